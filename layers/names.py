"""Channel and group naming rules.

A plain name is ASCII letters, digits, ``-``, ``_`` and ``.``, under 100 characters.
Two special kinds carry a marker:

- ``prefix!local`` is *process-specific*: everything up to and including ``!`` names the
  one process that reads it, and that process receives on the prefix alone.
- ``prefix?random`` is *single-reader*: exactly one consumer reads it.
"""

import re

from .errors import InvalidChannelName

MAX_NAME_LENGTH = 100

_CHANNEL = re.compile(r"[a-zA-Z\d\-_.]+([!?][a-zA-Z\d\-_.]*)?\Z")
_GROUP = re.compile(r"[a-zA-Z\d\-_.]+\Z")


def validate_channel(name: str) -> str:
    """Return ``name`` if it is a valid channel name, else raise InvalidChannelName."""
    if not isinstance(name, str) or len(name) >= MAX_NAME_LENGTH or not _CHANNEL.match(name):
        raise InvalidChannelName(f"invalid channel name: {name!r}")
    return name


def validate_group(name: str) -> str:
    """Return ``name`` if it is a valid group name, else raise InvalidChannelName."""
    if not isinstance(name, str) or len(name) >= MAX_NAME_LENGTH or not _GROUP.match(name):
        raise InvalidChannelName(f"invalid group name: {name!r}")
    return name


def queue_name(name: str) -> str:
    """The queue a message for ``name`` is stored in: the process prefix for ``!`` names."""
    i = name.find("!")
    return name[: i + 1] if i >= 0 else name


def is_process_prefix(name: str) -> bool:
    """True for a bare process prefix such as ``http.response.ab12!``."""
    return name.endswith("!")
