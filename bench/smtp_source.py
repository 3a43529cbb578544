"""Postfix's ``smtp-source``, an independent SMTP load generator for the email benchmark.

``bench.email_ingest`` loads the servers with the suite's own smtplib clients and, when
``smtp-source`` is found, with it too, in the same run. It is looked for, in order, at the
path given by ``--smtp-source`` or ``SWITCHROOM_SMTP_SOURCE``, on ``PATH``, then in
``bench/.tools/postfix`` (ignored by git), where this module puts it without installing
the Postfix service:

    python -m bench.smtp_source      # apt-get download postfix; dpkg -x into bench/.tools/postfix

A copy extracted from the package needs the package's own libraries (``libpostfix-*.so``
in ``usr/lib/postfix``): ``find`` sets ``LD_LIBRARY_PATH`` for it.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "bench" / ".tools" / "postfix"
ENV = "SWITCHROOM_SMTP_SOURCE"
# Where the package puts it, inside an extracted tree.
BINARY = Path("usr/sbin/smtp-source")
LIBRARIES = Path("usr/lib/postfix")
VERSION_FILE = "VERSION"


@dataclass(frozen=True)
class SmtpSource:
    """A runnable ``smtp-source``: its path, the environment it needs, and its version."""

    path: str
    version: str
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return f"smtp-source (Postfix {self.version})"

    def command(self, port: int, sessions: int, messages: int, body: int) -> list[str]:
        """Send ``messages`` in all over ``sessions`` parallel connections, several per
        connection (``-d``), each with a ``body``-byte body; any reply but the expected
        one ends it with an error (so every message it counts was answered 250)."""
        return [
            self.path,
            *("-s", str(sessions), "-m", str(messages), "-l", str(body), "-d"),
            *("-f", "load@bench.example", "-t", "bench@example.com", "-M", "bench.example"),
            f"127.0.0.1:{port}",
        ]


def _version(binary: Path) -> str:
    """The Postfix version of a binary: from the VERSION file ``fetch`` leaves beside an
    extracted tree, else from dpkg when the package is installed."""
    for parent in binary.parents:
        marker = parent / VERSION_FILE
        if marker.is_file():
            return marker.read_text().strip()
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "postfix"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "version unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "version unknown"


def _runnable(binary: Path) -> SmtpSource | None:
    """``binary`` with the environment it needs, if it starts (it prints its usage and
    exits 1 when run without arguments; a missing library makes the loader fail instead)."""
    env = dict(os.environ)
    for parent in binary.parents:
        libraries = parent / LIBRARIES
        if libraries.is_dir():
            paths = [str(libraries), env.get("LD_LIBRARY_PATH")]
            env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in paths if p)
            break
    try:
        done = subprocess.run([str(binary)], capture_output=True, text=True, env=env, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if "usage:" not in done.stderr:
        return None
    return SmtpSource(str(binary), _version(binary), env)


def find(path: str | None = None) -> tuple[SmtpSource | None, str]:
    """The ``smtp-source`` to use and where it was found, or None and why there is none."""
    given = path or os.environ.get(ENV)
    if given:
        found = _runnable(Path(given))
        return (found, given) if found else (None, f"{given} (from --smtp-source or {ENV}) does not run")
    candidates = [shutil.which("smtp-source"), shutil.which("smtp-source", path="/usr/sbin"), TOOLS / BINARY]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            found = _runnable(Path(candidate))
            if found:
                return found, str(candidate)
    where = (TOOLS / BINARY).relative_to(ROOT)
    return None, f"smtp-source not found (PATH, /usr/sbin, {where}); `python -m bench.smtp_source` fetches it"


def fetch(target: Path = TOOLS) -> SmtpSource:
    """Download Debian's postfix package and extract it into ``target`` (nothing is
    installed or started); returns the ``smtp-source`` in it."""
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["apt-get", "download", "postfix"], cwd=folder, check=True)
        [deb] = Path(folder).glob("postfix_*.deb")
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    (target / VERSION_FILE).write_text(version + "\n")
    found = _runnable(target / BINARY)
    if found is None:
        raise RuntimeError(f"{target / BINARY} was extracted but does not run")
    return found


if __name__ == "__main__":
    source = fetch()
    print(f"{source.label} at {source.path}")
    sys.exit(0)
