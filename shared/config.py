"""Settings common to every process: the layer, logging, metrics and health checks.

Every setting has a flag and an environment variable (``SWITCHROOM_<NAME>``); a flag
wins over the environment, which wins over the default. ``add_option`` writes both, and
the default, into the flag's ``--help`` line.
"""

import argparse
import os
from typing import Any

from switchroom.layers import BaseLayer

from .logs import FORMATS
from .startup import build_layer

DEFAULT_LAYER = "memory://"
DEFAULT_LAYER_WAIT = 5.0
TRUE = ("1", "true", "yes", "on")


def env(name: str, default: Any = None) -> Any:
    """The value of ``SWITCHROOM_<NAME>`` or ``default``."""
    return os.environ.get("SWITCHROOM_" + name.upper(), default)


def boolean(text: str) -> bool:
    """An environment value as a boolean: 1, true, yes and on are true."""
    return text.strip().lower() in TRUE


def shown(value: Any) -> str:
    """A default as ``--help`` shows it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == "" or value == ():
        return "none"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def add_option(
    parser: argparse.ArgumentParser | Any,
    *flags: str,
    env_name: str,
    default: Any,
    help: str,
    kind: Any = None,
    **options: Any,
) -> None:
    """Add a flag whose default comes from ``SWITCHROOM_<ENV_NAME>``, then ``default``.

    A boolean default makes a ``--flag/--no-flag`` pair. The environment value goes
    through the flag's ``type``, so a bad one is reported like a bad flag.
    """
    variable = "SWITCHROOM_" + env_name.upper()
    text = f"{help} [env {variable}, default {shown(default)}]"
    raw = os.environ.get(variable)
    if isinstance(default, bool):
        value = default if raw is None else boolean(raw)
        parser.add_argument(
            *flags, action=argparse.BooleanOptionalAction, default=value, help=text, **options
        )
        return
    kind = kind or (type(default) if default is not None else str)
    if "choices" in options:
        kind = _one_of(kind, options["choices"])
    parser.add_argument(*flags, type=kind, default=default if raw is None else raw, help=text, **options)


def _one_of(kind: Any, choices: list[Any]) -> Any:
    """``kind`` that also refuses values outside ``choices`` (argparse checks flags only, not
    the environment's values)."""

    def convert(text: str) -> Any:
        value = kind(text)
        if value not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(map(str, choices))}")
        return value

    convert.__name__ = getattr(kind, "__name__", "value")
    return convert


def add_layer_arguments(parser: argparse.ArgumentParser) -> None:
    """``--layer`` and ``--layer-wait``."""
    add_option(
        parser,
        "--layer",
        env_name="layer",
        default=DEFAULT_LAYER,
        help="channel layer URL, e.g. redis://127.0.0.1:6379/0; several (comma separated) are shards",
    )
    add_option(
        parser,
        "--layer-wait",
        env_name="layer_wait",
        default=DEFAULT_LAYER_WAIT,
        help="seconds to wait at start for the layer to answer before giving up (exit 2)",
    )


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``."""
    add_option(
        parser,
        "--log-level",
        env_name="log_level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity",
    )
    add_option(
        parser,
        "--log-format",
        env_name="log_format",
        default="text",
        choices=list(FORMATS),
        help="text (one line for people) or json (one object per line for log shippers)",
    )


def add_metrics_arguments(parser: argparse.ArgumentParser, default_port: int = 0) -> None:
    """``--metrics-port`` and ``--metrics-bind``."""
    add_option(
        parser,
        "--metrics-port",
        env_name="metrics_port",
        default=default_port,
        help="serve /metrics (Prometheus), /livez and /readyz on this port (0 = off)",
    )
    add_option(
        parser,
        "--metrics-bind",
        env_name="metrics_bind",
        default="127.0.0.1",
        help="address of the metrics and health port (0.0.0.0 for probes from other hosts)",
    )


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every server and the worker take: layer, logging, metrics and health."""
    add_layer_arguments(parser)
    add_log_arguments(parser)
    add_metrics_arguments(parser)


def layer_from_args(args: argparse.Namespace, **options: Any) -> BaseLayer:
    """Build the layer named by ``--layer``; a bad URL is a StartupError."""
    return build_layer(args.layer, **options)
