"""Build and cache virtualenvs of other systems, for benchmarks and interop tests.

    python bench/venvs.py original     # prints the path of that venv's python
    python bench/venvs.py --list

Each venv lives in ``<repo>/.cache/venvs/<name>-<hash>``, the hash covering its recipe,
so changing a recipe builds a fresh one and an unchanged recipe is built only once.

- ``original``: the stack Switchroom descends from, Channels 1.1.8 + Daphne 1.4.2 +
  asgi_redis 1.4.3 + asgiref 1.1.2 on Django 2.2.28. asgi_redis needs msgpack 0.6.x,
  whose C extension does not compile on Python 3.11 and silently falls back to pure
  Python; it is rebuilt here from its sdist with Cython < 3 after mapping the float
  pack/unpack calls CPython made public in 3.11, and checked to be the C build.
- ``interop``: the same Channels / Daphne / asgiref / Django without asgi_redis (which
  pins redis-py 2.10), plus this checkout and its layer's dependencies, so Channels 1.x
  and Daphne 1.x processes can name ``switchroom.layers.asgi1.ChannelLayer``.
- ``channels4``: Channels 4 + Daphne 4 + channels_redis 4, today's descendant.
- ``channels4-tuned``: the same with hiredis, which redis-py then uses to parse replies.
- ``ceiling``: uvicorn with its fast extras (uvloop, httptools), for a raw ASGI app.
- ``switchroom``: this checkout itself, in the running interpreter.
"""

import argparse
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / ".cache" / "venvs"

ORIGINAL_STACK = ["channels==1.1.8", "daphne==1.4.2", "asgiref==1.1.2", "Django==2.2.28"]
MSGPACK_SDIST = "msgpack==0.6.2"
BUILD_TOOLS = ["Cython<3", "setuptools<70", "wheel"]
# CPython 3.11 made the float pack/unpack calls public, with char* where they took unsigned char*.
FLOAT_CALLS = {
    "_PyFloat_Pack4(d, &buf[1], 0)": "PyFloat_Pack4(d, (char*)&buf[1], 0)",
    "_PyFloat_Pack8(d, &buf[1], 0)": "PyFloat_Pack8(d, (char*)&buf[1], 0)",
    "_PyFloat_Unpack4((unsigned char*)n, 0)": "PyFloat_Unpack4((const char*)n, 0)",
    "_PyFloat_Unpack8((unsigned char*)n, 0)": "PyFloat_Unpack8((const char*)n, 0)",
}

# Bump when the build steps change, so cached venvs built the old way are rebuilt.
BUILD_REVISION = 2

RECIPES: dict[str, dict[str, object]] = {
    "original": {
        "requirements": [*ORIGINAL_STACK, "asgi_redis==1.4.3"],
        "msgpack": MSGPACK_SDIST,
    },
    "interop": {
        "requirements": [*ORIGINAL_STACK, "msgpack>=1.0", "redis>=5.0", "hiredis>=2.0"],
        "editable": True,
    },
    "channels4": {"requirements": ["channels>=4,<5", "daphne>=4,<5", "channels_redis>=4,<5"]},
    "channels4-tuned": {
        "requirements": ["channels>=4,<5", "daphne>=4,<5", "channels_redis>=4,<5", "hiredis>=2"]
    },
    "ceiling": {"requirements": ["uvicorn[standard]>=0.30"]},
}


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    """Run a build step, showing its output only when it fails."""
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise RuntimeError(f"build step failed ({result.returncode}): {' '.join(cmd)}")


def _recipe_hash(name: str) -> str:
    recipe = dict(
        RECIPES[name],
        python=sys.version_info[:2],
        renames=FLOAT_CALLS,
        tools=BUILD_TOOLS,
        revision=BUILD_REVISION,
    )
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def _build_msgpack(python: Path, requirement: str, workdir: Path) -> None:
    """Install msgpack 0.6.x from its sdist with the C extension rebuilt for this Python."""
    _run([str(python), "-m", "pip", "install", "-q", *BUILD_TOOLS])
    _run(
        [str(python), "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", str(workdir)]
        + [requirement]
    )
    (sdist,) = workdir.glob("msgpack-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(workdir, filter="data")
    source = next(p for p in workdir.iterdir() if p.is_dir() and p.name.startswith("msgpack-"))
    patched = 0
    for header in (source / "msgpack").glob("*.h"):
        text = header.read_text()
        for old, new in FLOAT_CALLS.items():
            patched += text.count(old)
            text = text.replace(old, new)
        header.write_text(text)
    if patched != len(FLOAT_CALLS):
        raise RuntimeError(f"{requirement}: expected {len(FLOAT_CALLS)} float calls, patched {patched}")
    for generated in (source / "msgpack").glob("*.cpp"):
        generated.unlink()
    _run([str(python), "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", str(source)])
    version = tuple(int(part) for part in requirement.split("==")[1].split("."))
    check = (
        "import msgpack, sys; "
        f"sys.exit(0 if 'cmsgpack' in repr(msgpack.Unpacker) and msgpack.version == {version!r} else 1)"
    )
    _run([str(python), "-c", check])


def _build(name: str, venv: Path) -> None:
    recipe = RECIPES[name]
    _run([sys.executable, "-m", "venv", str(venv)])
    python = _python_of(venv)
    _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    _run([str(python), "-m", "pip", "install", "-q", *recipe["requirements"]])  # type: ignore[misc]
    if "msgpack" in recipe:
        # Last, so it replaces what autobahn (msgpack 1.x) and asgi_redis (msgpack-python) pulled in;
        # both write the same ``msgpack`` package, so both go first.
        _run([str(python), "-m", "pip", "uninstall", "-q", "-y", "msgpack", "msgpack-python"])
        with tempfile.TemporaryDirectory() as workdir:
            _build_msgpack(python, str(recipe["msgpack"]), Path(workdir))
    if recipe.get("editable"):
        _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "-e", str(REPO)])


def ensure_venv(name: str, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Return the python of venv ``name``, building it first if no cached build matches."""
    if name == "switchroom":
        return Path(sys.executable)
    if name not in RECIPES:
        raise ValueError(f"unknown venv {name!r}; choose from {', '.join([*RECIPES, 'switchroom'])}")
    venv = Path(cache_dir) / f"{name}-{_recipe_hash(name)}"
    marker = venv / ".complete"
    if marker.exists():
        return _python_of(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same venv
        if marker.exists():
            return _python_of(venv)
        if venv.exists():
            shutil.rmtree(venv)
        started = time.monotonic()
        try:
            _build(name, venv)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        marker.write_text(f"built in {time.monotonic() - started:.0f} s\n")
    return _python_of(venv)


def ensure_checkout_venv(ref: str, cache_dir: Path = DEFAULT_CACHE) -> tuple[Path, Path]:
    """The python of a venv holding this repository as it was at git ``ref``, and that
    source tree (installed editable from ``git archive``, so its own ``bench`` app serves
    it): an earlier Switchroom measured beside this checkout in the same run."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=REPO, capture_output=True, text=True
    )
    if commit.returncode:
        raise ValueError(f"not a commit of this repository: {ref!r}")
    sha = commit.stdout.strip()
    venv = Path(cache_dir) / f"switchroom-{sha[:12]}"
    source = venv / "src"
    marker = venv / ".complete"
    if marker.exists():
        return _python_of(venv), source
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return _python_of(venv), source
        shutil.rmtree(venv, ignore_errors=True)
        try:
            _run([sys.executable, "-m", "venv", str(venv)])
            source.mkdir()
            archive = subprocess.run(["git", "archive", sha], cwd=REPO, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
            python = _python_of(venv)
            _run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
            _run([str(python), "-m", "pip", "install", "-q", "-e", str(source)])
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        marker.write_text(f"{sha}\n")
    return _python_of(venv), source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", nargs="?", help="original, interop, channels4, ceiling or switchroom")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for name, recipe in RECIPES.items():
            print(f"{name}: {' '.join(recipe['requirements'])}")  # type: ignore[arg-type]
        print("switchroom: this checkout")
        return 0
    started = time.monotonic()
    try:
        python = ensure_venv(args.name, args.cache_dir)
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(python)
    print(f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
