"""The slack interface server."""
