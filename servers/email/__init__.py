"""The email interface server."""
