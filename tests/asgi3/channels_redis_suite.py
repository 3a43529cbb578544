"""Run channels_redis's own test modules against ``switchroom.layers.channels.ChannelLayer``.

    python -m tests.asgi3.channels_redis_suite

Fetches the channels_redis source distribution of the installed version from the package
index (nothing of it is kept in this repository), takes its ``tests/test_core.py`` and
``tests/test_pubsub.py``, changes only the line that imports the layer they build, and runs
them with pytest on a private redis-server. The layer they build is this backend, with the
``hosts`` they name mapped to that server (a database number each, several being shards).

Prints each test's outcome, then which failures are the known differences (internals of
channels_redis, or behaviour docs/coming-from-uvicorn-or-channels.md describes); exits
non-zero if any other test fails. Needs the package index and ``async_timeout``.
"""

import os
import re
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

from switchroom.shared.redisproc import RedisProcess

ROOT = Path(__file__).resolve().parents[2]

# The one line changed in each module: the import of the layer class it builds.
IMPORTS = {
    "test_core.py": (
        "from channels_redis.core import ChannelFull, RedisChannelLayer",
        "from switchroom_layer import ChannelFull, RedisChannelLayer",
    ),
    "test_pubsub.py": (
        "from channels_redis.pubsub import RedisPubSubChannelLayer",
        "from switchroom_layer import RedisChannelLayer as RedisPubSubChannelLayer",
    ),
}

SHIM = '''"""The layer channels_redis's tests build, as this backend on the test's redis-server."""
import os
from urllib.parse import urlsplit

from channels.exceptions import ChannelFull  # noqa: F401

from switchroom.layers.channels import ChannelLayer


def RedisChannelLayer(hosts=None, prefix="asgi", **config):
    base = os.environ["CHANNELS_REDIS_SUITE_REDIS"]
    dbs = [urlsplit(h if isinstance(h, str) else "").path.strip("/") or "0" for h in hosts or [""]]
    return ChannelLayer(url=" ".join(f"{base}/{db}" for db in dbs) + f"?prefix={prefix}", **config)
'''

# Failures expected, with why: channels_redis internals, or a documented difference.
KNOWN = {
    "test_core.py::test_double_receive": "calls close_pools(), and reads a channel from a loop "
    "other than its own",
    "test_core.py::test_reject_bad_client_prefix": "a foreign ! channel raises ValueError, "
    "not AssertionError",
    "test_core.py::test_group_send_capacity": "capacity of a consumer's channel is applied as messages "
    "reach its process: a reader that keeps up loses nothing",
    "test_core.py::test_group_send_capacity_multiple_channels": "logs skipped members as a warning in "
    "Switchroom's words, not channels_redis's info line",
    "test_core.py::test_random_reset__client_prefix": "client_prefix is internal",
    "test_core.py::test_default_group_key_format": "_group_key is internal",
    "test_core.py::test_custom_group_key_format": "_group_key is internal",
    "test_core.py::test_receive_buffer_respects_capacity": "receive_buffer is internal",
    "test_pubsub.py::test_receive_on_non_owned_general_channel": "sends a str; Channels messages are dicts",
    "test_pubsub.py::test_loop_instance_channel_layer_reference": "_get_layer is internal",
    "test_pubsub.py::test_serialize": "serialize is internal (msgpack inside the layer)",
    "test_pubsub.py::test_deserialize": "deserialize is internal (msgpack inside the layer)",
    "test_pubsub.py::test_multi_event_loop_garbage_collection": "_layers is internal",
    "test_pubsub.py::test_auto_reconnect": "_shards is internal",
}


def fetch(into: Path) -> Path:
    """The channels_redis sdist of the installed version, unpacked under ``into``."""
    wanted = version("channels_redis")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
        + ["-d", str(into), f"channels_redis=={wanted}"],
        check=True,
    )
    archive = next(into.glob("channels_redis-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / f"channels_redis-{wanted}" / "tests"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tests = fetch(work / "sdist")
        run = work / "run"
        run.mkdir()
        for name, (old, new) in IMPORTS.items():
            text = (tests / name).read_text()
            if text.count(old) != 1:
                print(f"{name}: the import line to change is not there once: {old}")
                return 2
            (run / name).write_text(text.replace(old, new))
        (run / "switchroom_layer.py").write_text(SHIM)
        (run / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
        redis = RedisProcess().start()
        try:
            env = {"CHANNELS_REDIS_SUITE_REDIS": redis.url.rsplit("/", 1)[0], "PYTHONPATH": f"{run}:{ROOT}"}
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "--timeout", "60"]
                + list(IMPORTS),
                cwd=run,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
            )
        finally:
            redis.stop()
    outcomes = re.findall(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS) (\S+?\.py::\w+)", proc.stdout, re.M)
    if not outcomes:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        return 2
    unexpected = []
    for outcome, test in outcomes:
        base = re.sub(r"\[.*\]$", "", test)
        note = KNOWN.get(base, "")
        print(f"{outcome:7} {test}" + (f"  ({note})" if note and outcome in ("FAILED", "ERROR") else ""))
        if outcome in ("FAILED", "ERROR") and base not in KNOWN:
            unexpected.append(test)
    kinds = ("PASSED", "FAILED", "ERROR", "XFAIL", "XPASS")
    counts = {kind: sum(1 for o, _ in outcomes if o == kind) for kind in kinds}
    print(", ".join(f"{n} {kind.lower()}" for kind, n in counts.items() if n))
    if unexpected:
        print("failed outside the known differences:", ", ".join(unexpected))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
