"""Fixtures for the ASGI 1.0 tests: the interop virtualenv, built (once) by bench/venvs.py."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENVS = REPO / "bench" / "venvs.py"
BUILD_TIMEOUT = 600


@pytest.fixture(scope="session")
def interop_python() -> str:
    """Python of the venv holding Channels 1.1.8, Daphne 1.4.2, asgiref 1.1.2 and this checkout.

    A failed build fails every test that needs it, with pip's output; nothing is skipped.
    """
    result = subprocess.run(
        [sys.executable, str(VENVS), "interop"], capture_output=True, text=True, timeout=BUILD_TIMEOUT
    )
    if result.returncode:
        pytest.fail(f"building the interop venv failed:\n{result.stderr}", pytrace=False)
    return result.stdout.strip().splitlines()[-1]
