"""Logging set-up shared by every process: one line per event, in one of two formats.

``text`` (the default) is for people: time, level, the process role, the logger and the
message. ``json`` is for log shippers: one JSON object per line with the fields listed in
``docs/operations.md`` (``time``, ``level``, ``role``, ``pid``, ``logger``, ``message``,
and ``error`` with the traceback when there is one).
"""

import json
import logging
import os
import sys
from datetime import UTC, datetime

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s [{role}] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role
        self.pid = os.getpid()

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "role": self.role,
            "pid": self.pid,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: str, role: str) -> logging.Formatter:
    """The formatter of ``log_format`` (``text`` or ``json``) for a process of ``role``."""
    if log_format == "json":
        return JsonFormatter(role)
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT.format(role=role))
    raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")


def setup_logging(level: str = "info", role: str = "switchroom", log_format: str = "text") -> None:
    """Send logs to stderr at ``level``, each line tagged with ``role`` (``http``, ``worker``...)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format, role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosmtpd logs every SMTP command, and aiohttp every request (the Slack stand-in's),
    # at INFO; keep their warnings and errors only.
    if level.lower() != "debug":
        for name in ("mail.log", "aiohttp.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
