"""Code shared by servers and workers: message specs, naming, configuration, CLI and logging."""
