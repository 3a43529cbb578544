"""A Channels 4 project serving the benchmark endpoints: the app runs in the Daphne process."""
