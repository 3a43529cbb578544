"""Logging set-up shared by every process: one line per event, in one of two formats.

``text`` (the default) is for people: time, level, the process role, the logger and the
message. ``json`` is for log shippers: one JSON object per line with the fields listed in
``docs/operations.md`` (``time``, ``level``, ``role``, ``pid``, ``logger``, ``message``,
and ``error`` with the traceback when there is one). Python's warnings and Twisted's
warnings and failures come through ``logging`` too, so every line is in the format.
"""

import json
import logging
import os
import sys
import warnings
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


_twisted_followed = False


def follow_twisted() -> None:
    """Once Twisted is loaded, send its warnings, errors and failures (Autobahn's too) through
    ``logging``, in the process's format: left alone, Twisted prints failures as raw
    tracebacks on stderr and drops errors. Its info events (factories starting) stay out."""
    global _twisted_followed
    if _twisted_followed or "twisted.logger" not in sys.modules:
        return
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        STDLibLogObserver,
        globalLogBeginner,
    )

    observer = FilteringLogObserver(
        STDLibLogObserver(name="twisted"), [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)]
    )
    showwarning = warnings.showwarning  # Twisted takes Python's warnings over; logging keeps them
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    warnings.showwarning = showwarning
    _twisted_followed = True


def setup_logging(level: str = "info", role: str = "switchroom", log_format: str = "text") -> None:
    """Send logs to stderr at ``level``, each line tagged with ``role`` (``http``, ``worker``...)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format, role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    follow_twisted()
    # aiosmtpd logs every SMTP command, and aiohttp every request (the Slack stand-in's),
    # at INFO; keep their warnings and errors only.
    if level.lower() != "debug":
        for name in ("mail.log", "aiohttp.access"):
            logging.getLogger(name).setLevel(logging.WARNING)
