"""The wheel installs one top-level package, ``switchroom``, with every part mapped inside it."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_holds_only_the_switchroom_namespace(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("switchroom-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"switchroom", wheel.name.split("-py")[0] + ".dist-info"}
    for part in ("layers", "shared", "worker", "servers/http_ws", "servers/email", "servers/slack"):
        assert f"switchroom/{part}/__init__.py" in names


def test_console_script_lists_the_commands():
    out = subprocess.run(
        [sys.executable, "-m", "switchroom.cli", "--help"], capture_output=True, text=True, timeout=60
    ).stdout
    for command in ("http", "email", "slack", "worker", "demo"):
        assert f"  {command} " in out
