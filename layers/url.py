"""Choose and build a layer from a URL (or several, for shards).

``memory://`` is the in-process layer; ``redis://``, ``rediss://`` and ``unix://`` URLs
are Redis servers, several of them shards; ``redis+sentinel://h:p,h:p/service`` is a
master found through Sentinel; ``redis+cluster://h:p,h:p`` is a Redis Cluster. Layer
options may ride in the query string of the first URL
(``redis://h:6379/0?capacity=200&expiry=30``) or be passed as keywords. TLS settings
ride there too (``rediss://h:6380/0?ssl_ca_certs=/etc/ca.pem``; see ``redis.tls_options``).
"""

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from switchroom.shared.options import boolean

from .base import BaseLayer
from .durable import durable_options
from .memory import MemoryLayer
from .redis import RedisLayer

_OPTIONS = {
    "capacity": int,
    "process_capacity": int,
    "expiry": float,
    "group_expiry": float,
    "max_message_size": int,
    "prefix": str,
    "socket_timeout": float,
    "connect_timeout": float,
    "block_timeout": float,
    "local": boolean,
    "durable_channels": str,
    "durable_capacity": int,
    "durable_max_message_size": int,
    "visibility_timeout": float,
    "max_deliveries": int,
    "dedupe_window": float,
    "persistence": str,
    "presence_interval": float,
    "presence_max_meta_size": int,
}
_REDIS_SCHEMES = {
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
}


def split_urls(url_or_urls: str | Sequence[str]) -> list[str]:
    """Accept one URL, a list, or a comma/space separated string of URLs.

    A comma starts a new URL only before a scheme, so the host lists of Sentinel URLs
    (``redis+sentinel://h1:26379,h2:26379/service``) stay whole.
    """
    if not isinstance(url_or_urls, str):
        return list(url_or_urls)
    urls: list[str] = []
    for piece in url_or_urls.replace(",", " , ").split():
        if piece == ",":
            continue
        if "://" in piece or not urls:
            urls.append(piece)
        else:
            urls[-1] += "," + piece
    return urls


def _take_options(url: str, options: dict[str, Any]) -> str:
    """Move layer options out of ``url``'s query string into ``options``; return the rest."""
    parts = urlsplit(url)
    kept = []
    for key, value in parse_qsl(parts.query):
        if key in _OPTIONS:
            parse = _OPTIONS[key]
            try:
                options.setdefault(key, parse(value))
            except ValueError as exc:
                why = "give a whole number" if parse is int else "give a number" if parse is float else exc
                raise ValueError(f"{key}={value!r}: {why}") from None
        else:
            kept.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(kept)))


def get_layer(url_or_urls: str | Sequence[str], **options: Any) -> BaseLayer:
    """Build the layer a URL names; several Redis URLs become shards of one layer."""
    urls = split_urls(url_or_urls)
    if not urls:
        raise ValueError("no layer URL given")
    schemes = {urlsplit(u).scheme for u in urls}
    urls = [_take_options(u, options) for u in urls]
    durable = durable_options(options)
    if durable is not None:
        options["durable"] = durable
    if schemes == {"memory"}:
        if len(urls) > 1:
            raise ValueError("memory:// cannot be sharded")
        for key in ("socket_timeout", "connect_timeout", "block_timeout", "prefix", "local"):
            options.pop(key, None)
        return MemoryLayer(**options)
    if schemes <= _REDIS_SCHEMES:
        return RedisLayer(urls, **options)
    unknown = ", ".join(sorted(schemes - _REDIS_SCHEMES - {"memory"}) or schemes)
    raise ValueError(
        f"unsupported layer URL scheme: {unknown} (use memory://, redis://, rediss:// or redis+sentinel://)"
    )
