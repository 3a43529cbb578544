"""A Channels 1.1.8 project serving the benchmark endpoints, as the original stack did."""
