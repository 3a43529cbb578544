"""The options reference of every command, generated from the settings dataclasses.

``COMMANDS`` names, per command, the settings classes its flags come from; the docs hold
one generated table per entry between ``<!-- options:NAME -->`` and ``<!-- /options -->``
markers. ``python -m switchroom.reference --write`` regenerates them; a test fails when
they differ.
"""

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from switchroom.shared.config import LAYER, LOGS, Common
from switchroom.shared.options import Spec, reference, specs

DOCS = Path(__file__).resolve().parents[1] / "docs"


@dataclass(frozen=True)
class Group:
    """Some options of one settings class, as one command takes them."""

    cls: type
    prefix: str = ""
    only: tuple[str, ...] | None = None

    def specs(self) -> list[Spec]:
        """The flags of this group."""
        return specs(self.cls, self.prefix, self.only)

    def markdown(self) -> str:
        """The group's table."""
        return reference(self.cls, self.prefix, self.only)


def commands() -> dict[str, list[Group]]:
    """Each command's option groups, in the order its ``--help`` shows them."""
    from switchroom.demo import DemoSettings
    from switchroom.servers.email.settings import Settings as EmailSettings
    from switchroom.servers.http_ws.settings import Settings as HttpSettings
    from switchroom.servers.slack.settings import Settings as SlackSettings
    from switchroom.up import UpSettings
    from switchroom.worker.settings import WorkerSettings

    common = Group(Common)
    return {
        "http": [common, Group(HttpSettings, "http")],
        "email": [common, Group(EmailSettings, "email")],
        "slack": [common, Group(SlackSettings, "slack")],
        "worker": [common, Group(WorkerSettings)],
        "up": [Group(UpSettings, "up"), Group(Common, only=("layer_wait", *LOGS))],
        "demo": [Group(Common, only=LAYER), Group(DemoSettings, "demo"), Group(Common, only=LOGS)],
    }


def tables() -> dict[tuple[str, str], str]:
    """(doc file, table name) -> the generated table."""
    groups = commands()
    return {
        ("operations.md", "common"): Group(Common).markdown(),
        ("http.md", "http"): groups["http"][1].markdown(),
        ("email.md", "email"): groups["email"][1].markdown(),
        ("slack.md", "slack"): groups["slack"][1].markdown(),
        ("worker.md", "worker"): groups["worker"][1].markdown(),
        ("operations.md", "up"): groups["up"][0].markdown(),
        ("operations.md", "demo"): groups["demo"][1].markdown(),
    }


def marked(name: str) -> re.Pattern[str]:
    """The region of a doc that holds table ``name``."""
    return re.compile(rf"(<!-- options:{name} -->\n)(.*?)(<!-- /options -->)", re.S)


def stale() -> list[str]:
    """The tables whose doc region differs from the generated table."""
    found = []
    for (doc, name), table in tables().items():
        match = marked(name).search((DOCS / doc).read_text())
        if match is None or match.group(2) != table:
            found.append(f"{doc}: {name}")
    return found


def write() -> None:
    """Regenerate every table in place."""
    for (doc, name), table in tables().items():
        path = DOCS / doc
        text, count = marked(name).subn(
            lambda m, table=table: m.group(1) + table + m.group(3), path.read_text()
        )
        if count != 1:
            raise SystemExit(f"{path}: no <!-- options:{name} --> ... <!-- /options --> region")
        path.write_text(text)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m switchroom.reference --write")
    write()
