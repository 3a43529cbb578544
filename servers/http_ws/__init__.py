"""The http_ws interface server."""
