"""Channel and group naming rules.

A plain name is ASCII letters, digits, ``-``, ``_`` and ``.``, under 100 characters.
Two special kinds carry a marker:

- ``kind.process!local`` is *process-specific*: it is an address in the inbox of the one
  process named by the dotted segment just before ``!`` (``http.response.5c1e0d2a!3f9a``
  belongs to process ``5c1e0d2a``). All addresses of a process share its one queue,
  ``process!``, read by that process's inbox alone (``inbox.py``).
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


def process_of(name: str) -> str:
    """The process a ``!`` name belongs to: the dotted segment just before its ``!``."""
    return name[: name.index("!")].rpartition(".")[2]


def queue_name(name: str) -> str:
    """The queue a message for ``name`` is stored in: ``process!`` for ``!`` names."""
    if "!" in name:
        return process_of(name) + "!"
    return name


def is_process_prefix(name: str) -> bool:
    """True for a bare process prefix such as ``http.response.ab12!``."""
    return name.endswith("!")


def join_addresses(addresses: list[str]) -> str:
    """One queue entry's target field for several addresses of one process.

    An address whose part up to ``!`` equals the previous one's is written as its local
    part alone, so a fan-out to 2,000 sockets of a server costs ~17 bytes per socket.
    """
    if len(addresses) == 1:
        return addresses[0]
    out = []
    last = ""
    for address in addresses:
        bang = address.index("!") + 1
        if address[:bang] == last:
            out.append(address[bang:])
        else:
            last = address[:bang]
            out.append(address)
    return ",".join(out)


def split_addresses(field: str) -> list[str]:
    """The addresses of a target field written by ``join_addresses`` (or one plain name)."""
    if "," not in field:
        return [field]
    out = []
    last = ""
    for part in field.split(","):
        bang = part.find("!")
        if bang >= 0:
            last = part[: bang + 1]
            out.append(part)
        else:
            out.append(last + part)
    return out
