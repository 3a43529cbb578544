"""A Channels 4 project served by Switchroom: see ``chatsite``."""
