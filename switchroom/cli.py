"""The ``switchroom`` console script: one subcommand per process kind.

Each subcommand lives in its own module with a ``main(argv) -> int``; this file only
dispatches, so starting one server never imports the others' dependencies.
"""

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "http": ("switchroom.servers.http_ws.cli", "run the HTTP/WebSocket interface server"),
    "email": ("switchroom.servers.email.cli", "run the email (SMTP) interface server"),
    "slack": ("switchroom.servers.slack.cli", "run the Slack interface server"),
    "worker": ("switchroom.worker.cli", "run a worker for an application"),
    "up": ("switchroom.up", "run a whole deployment on this machine (one process, or --processes)"),
    "demo": ("switchroom.demo", "send, receive and broadcast on a layer and print the timings"),
}


def usage() -> str:
    lines = ["usage: switchroom COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `switchroom COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the subcommand named by the first argument."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"switchroom: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
