"""Command-line options generated from settings dataclasses.

A settings field declared with ``option(default, help=...)`` carries its flag, its
environment variable, its parser and its help text in its metadata. From that one
declaration every command builds its flags (``add_options``), its settings
(``from_args``), ``up`` builds a part's settings in process (``from_env``) or its child's
command line (``to_argv``), and the docs' option tables are generated (``reference``).

A flag wins over the environment, which wins over the default. The environment variable
is ``SWITCHROOM_<PREFIX>_<NAME>`` (``SWITCHROOM_<NAME>`` without a prefix); its value goes
through the flag's parser, so a bad one is refused like a bad flag. Booleans are flag
pairs (``--access-log``/``--no-access-log``) and read the same spellings everywhere
(``BOOLEAN_SPELLINGS``).
"""

import argparse
import dataclasses
import logging
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass
from typing import Any, NoReturn

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
BOOLEAN_SPELLINGS = TRUE + FALSE
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


class BadValue(argparse.ArgumentTypeError, ValueError):
    """A value a parser refuses; argparse shows its message, other callers catch a ValueError."""


def boolean(text: str) -> bool:
    """A boolean from 1/true/yes/on or 0/false/no/off (any case): every environment value and
    every URL option; anything else is refused."""
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadValue(f"{text!r} is not a boolean (use {', '.join(BOOLEAN_SPELLINGS)})")


def csv(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` as ``("a", "b", "c")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def duration(text: str) -> float:
    """Seconds from ``90``, ``30s``, ``10m``, ``12h`` or ``5d``."""
    text = text.strip().lower()
    unit = UNITS.get(text[-1:])
    try:
        seconds = float(text[:-1]) * unit if unit else float(text)
    except ValueError:
        raise BadValue(f"not a duration: {text!r} (use 30s, 10m, 12h, 5d)") from None
    if seconds <= 0:
        raise BadValue(f"a duration must be positive: {text!r}")
    return seconds


def shown_duration(seconds: float) -> str:
    """A duration in the largest unit that divides it: ``432000.0`` is ``5d``."""
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def shown(value: Any) -> str:
    """A default as ``--help`` and the docs show it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == "" or value == ():
        return "none"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


@dataclass(frozen=True)
class Option:
    """What a settings field's metadata says about its command-line form."""

    help: str
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    env: str | None = None
    parse: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    repeat: bool = False
    show: Callable[[Any], str] | None = None


def option(
    default: Any = MISSING,
    *,
    help: str,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    env: str | None = None,
    parse: Callable[[str], Any] | None = None,
    choices: Iterable[Any] | None = None,
    repeat: bool = False,
    show: Callable[[Any], str] | None = None,
) -> Any:
    """A dataclass field with a flag: ``port: int = option(8000, help="TCP port")``.

    ``flag`` defaults to ``--<name>`` (dashes for underscores), ``env`` to the command's
    ``SWITCHROOM_<PREFIX>_<NAME>``, ``parse`` to the field's type (``int | None`` parses
    as ``int``, ``tuple[str, ...]`` as a comma list); ``repeat`` makes a repeated flag add
    up; ``show`` formats the default in ``--help``.
    """
    meta = Option(help, flag, aliases, env, parse, tuple(choices) if choices else None, repeat, show)
    return dataclasses.field(default=default, metadata={"option": meta})


@dataclass(frozen=True)
class Spec:
    """One generated flag: a field's option resolved for a command's prefix."""

    name: str
    flags: tuple[str, ...]
    env: str
    default: Any
    help: str
    parse: Callable[[str], Any]
    choices: tuple[Any, ...] | None
    repeat: bool
    switch: bool
    show: Callable[[Any], str]

    @property
    def flag(self) -> str:
        """The flag's main spelling."""
        return self.flags[0]

    def text(self) -> str:
        """The ``--help`` line: the help, the values it takes (unless the help names them
        all), the variable and the default."""
        words = set(re.findall(r"[\w.-]+", self.help))
        values = [str(choice) for choice in self.choices or ()]
        named = "" if all(v in words for v in values) else f" (one of {', '.join(values)})"
        return f"{self.help}{named} [env {self.env}, default {self.show(self.default)}]"

    def convert(self, text: str) -> Any:
        """A string (a flag's argument, an environment value) as the field's value."""
        value = self.parse(text)
        if self.choices is not None and value not in self.choices:
            raise BadValue(f"{text!r} is not one of {', '.join(map(str, self.choices))}")
        return value


def specs(cls: type, prefix: str = "", only: Iterable[str] | None = None) -> list[Spec]:
    """The flags of ``cls``'s option fields (those named in ``only``, if given), in field order."""
    wanted = None if only is None else set(only)
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("option")
        if meta is None or (wanted is not None and f.name not in wanted):
            continue
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        kind = _plain_type(hints[f.name])
        env = meta.env or "SWITCHROOM_" + "_".join(p for p in (prefix, f.name) if p).upper()
        found.append(
            Spec(
                name=f.name,
                flags=(meta.flag or "--" + f.name.replace("_", "-"), *meta.aliases),
                env=env,
                default=default,
                help=meta.help,
                parse=meta.parse or _parser_for(kind),
                choices=meta.choices,
                repeat=meta.repeat,
                switch=kind is bool,
                show=meta.show or shown,
            )
        )
    if wanted is not None and len(found) != len(wanted):
        raise ValueError(f"{cls.__name__} has no option named {sorted(wanted - {s.name for s in found})}")
    return found


def _plain_type(hint: Any) -> Any:
    """``int | None`` as ``int``; ``tuple[str, ...]`` as ``tuple``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = rest[0]
    return typing.get_origin(hint) or hint


def _parser_for(kind: Any) -> Callable[[str], Any]:
    if kind is bool:
        return boolean
    if kind is tuple:
        return csv
    if kind in (int, float, str):
        return kind  # type: ignore[no-any-return]
    raise TypeError(f"no parser for options of type {kind!r}: give one with parse=")


class _FromEnv(str):
    """An environment value standing as a flag's default, so an error can name its variable."""

    variable = ""


class _Switch(argparse.BooleanOptionalAction):
    """``--x/--no-x`` whose environment value (a string default) is read by ``boolean``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.type = _named(boolean, boolean)


class _Extend(argparse.Action):
    """Repeated flags (``--domain a --domain b``, or comma lists) add up, replacing the default."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        seen = "_seen_" + self.dest
        current = getattr(namespace, self.dest) if getattr(namespace, seen, False) else ()
        setattr(namespace, self.dest, tuple(current) + tuple(values))
        setattr(namespace, seen, True)


def one_line_errors(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> None:
    """Make a refused flag a start-up failure like the others: one log line (in the
    ``--log-format`` the command line or environment asks for) naming the flag, exit 2,
    instead of argparse's usage block. ``argv`` is where to look for the format
    (``sys.argv`` by default)."""

    def error(message: str) -> NoReturn:
        from .logs import formatter

        words = list(sys.argv if argv is None else argv)
        chosen = os.environ.get("SWITCHROOM_LOG_FORMAT", "text")
        for index, word in enumerate(words):
            if word == "--log-format" and index + 1 < len(words):
                chosen = words[index + 1]
            elif word.startswith("--log-format="):
                chosen = word.partition("=")[2]
        role = parser.prog.split()[-1]
        text = f"cannot start: {message}; see {parser.prog} --help"
        record = logging.LogRecord(f"switchroom.{role}", logging.ERROR, "", 0, text, None, None)
        line = formatter("json" if chosen == "json" else "text", role).format(record)
        parser.exit(2, line + "\n")

    parser.error = error  # type: ignore[method-assign]


def add_options(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    prefix: str = "",
    only: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Spec]:
    """Add one flag per option field of ``cls``; returns their specs."""
    environ = os.environ if environ is None else environ
    if isinstance(parser, argparse.ArgumentParser):
        one_line_errors(parser)
    added = specs(cls, prefix, only)
    for spec in added:
        raw = environ.get(spec.env)
        # A string default goes through the action's type: a bad environment value is
        # refused like a bad flag.
        default: Any = spec.default
        if raw is not None:
            default = _FromEnv(raw)
            default.variable = spec.env
        options: dict[str, Any] = {"dest": spec.name, "default": default, "help": spec.text()}
        if spec.switch:
            parser.add_argument(*spec.flags, action=_Switch, **options)
            continue
        convert = _named(spec.convert, spec.parse)
        if spec.repeat:
            parser.add_argument(*spec.flags, action=_Extend, type=convert, **options)
        else:
            parser.add_argument(*spec.flags, type=convert, **options)
    return added


def _named(convert: Callable[[str], Any], parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``convert`` under ``parse``'s name, which argparse shows in its errors; an error in an
    environment value names its variable."""

    def named(text: str) -> Any:
        try:
            return convert(text)
        except ValueError as exc:
            if isinstance(text, _FromEnv):
                raise BadValue(f"{text.variable}={str(text)!r}: {exc}") from None
            raise

    named.__name__ = getattr(parse, "__name__", "value")
    return named


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """``cls`` from parsed flags (its option fields) and ``extra`` (the others)."""
    values = {s.name: getattr(args, s.name) for s in specs(cls)}
    return cls(**values, **extra)


def from_env(cls: type, prefix: str = "", environ: Mapping[str, str] | None = None, **overrides: Any) -> Any:
    """``cls`` as its command would build it from the environment alone, with ``overrides``
    (values, not strings) on top: how ``up`` builds a part it runs in its own process."""
    environ = os.environ if environ is None else environ
    values = {}
    for spec in specs(cls, prefix):
        raw = environ.get(spec.env)
        if spec.name in overrides:
            values[spec.name] = overrides.pop(spec.name)
        elif raw is not None:
            try:
                values[spec.name] = spec.convert(raw)
            except ValueError as exc:
                raise ValueError(f"{spec.env}: {exc}") from None
    return cls(**values, **overrides)


def to_argv(cls: type, values: Mapping[str, Any]) -> list[str]:
    """The flags that give ``cls``'s fields ``values``: how ``up`` starts a part as a child."""
    argv: list[str] = []
    by_name = {s.name: s for s in specs(cls)}
    for name, value in values.items():
        spec = by_name[name]
        if spec.switch:
            argv.append(spec.flag if value else "--no-" + spec.flag[2:])
        elif spec.repeat:
            for item in value:
                argv += [spec.flag, str(item)]
        elif isinstance(value, tuple):
            argv += [spec.flag, ",".join(value)]
        else:
            argv += [spec.flag, str(value)]
    return argv


def reference(cls: type, prefix: str = "", only: Iterable[str] | None = None) -> str:
    """A Markdown table of ``cls``'s flags: flag, variable, default and meaning."""
    lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for spec in specs(cls, prefix, only):
        meaning = spec.help.replace("|", "\\|").replace("*", "\\*")
        lines.append(f"| `{spec.flag}` | `{spec.env}` | `{spec.show(spec.default)}` | {meaning} |")
    return "\n".join(lines) + "\n"
