"""Settings common to every process: which layer to use and how to log.

Every setting has a flag and an environment variable (``SWITCHROOM_<NAME>``); a flag
wins over the environment, which wins over the default.
"""

import argparse
import os
from typing import Any

from switchroom.layers import BaseLayer, get_layer

DEFAULT_LAYER = "memory://"


def env(name: str, default: Any = None) -> Any:
    """The value of ``SWITCHROOM_<NAME>`` or ``default``."""
    return os.environ.get("SWITCHROOM_" + name.upper(), default)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--layer`` and ``--log-level``, the flags every process takes."""
    parser.add_argument(
        "--layer",
        default=env("layer", DEFAULT_LAYER),
        help="channel layer URL(s), e.g. redis://127.0.0.1:6379/0; several (comma separated) "
        "are shards [env SWITCHROOM_LAYER, default memory://]",
    )
    parser.add_argument(
        "--log-level",
        default=env("log_level", "info"),
        choices=["debug", "info", "warning", "error"],
        help="log verbosity [env SWITCHROOM_LOG_LEVEL, default info]",
    )


def layer_from_args(args: argparse.Namespace, **options: Any) -> BaseLayer:
    """Build the layer named by ``--layer``."""
    return get_layer(args.layer, **options)
