"""Logging set-up shared by every process: one line per event, prefixed with the process role."""

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s [{role}] %(name)s: %(message)s"


def setup_logging(level: str = "info", role: str = "switchroom") -> None:
    """Send logs to stderr at ``level``, each line tagged with ``role`` (``http``, ``worker``...)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT.format(role=role)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosmtpd logs every SMTP command at INFO; keep its warnings and errors only.
    if level.lower() != "debug":
        logging.getLogger("mail.log").setLevel(logging.WARNING)
