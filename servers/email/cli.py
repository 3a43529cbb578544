"""``switchroom email``: run the email server (inbound SMTP, outbound relay) until a signal."""

import argparse
import dataclasses

from switchroom.shared.config import add_common_arguments, add_option
from switchroom.shared.serving import run_server

from .server import EmailServer
from .settings import Settings

HELP = {
    "bind": "address to listen on",
    "port": "SMTP port of the MX listener: no AUTH, local domains only (0 = any free port)",
    "submission_port": "SMTP port of the submission listener: AUTH required, may relay (none by default)",
    "hostname": "name in the SMTP greeting and in bounces",
    "domains": "comma-separated domains to accept mail for",
    "addresses": "comma-separated single addresses to accept mail for",
    "max_message_size": "message bytes (more: 552)",
    "max_recipients": "recipients per message (more: 452)",
    "max_line_length": "bytes per line, CRLF included (more: 500)",
    "command_timeout": "seconds to complete each command; during DATA, seconds without any bytes",
    "session_timeout": "seconds a whole SMTP session may last (then 421)",
    "max_connections_per_ip": "simultaneous connections per client IP (more: 421)",
    "shutdown_grace": "seconds a stop leaves sessions to finish the message in progress",
    "tls_cert": "certificate (PEM) for STARTTLS",
    "tls_key": "private key (PEM) for STARTTLS",
    "require_starttls": "refuse mail until the client has started TLS",
    "auth_file": "file of user:password lines, the submission listener's users "
    "[or env SWITCHROOM_SMTP_AUTH_FILE]",
    "auth_without_tls": "allow AUTH before STARTTLS (not recommended)",
    "relay_host": "SMTP relay for outbound mail (user/password from SWITCHROOM_RELAY_USER/_PASSWORD)",
    "relay_port": "relay port",
    "relay_tls": "connect to the relay with implicit TLS",
    "relay_starttls": "STARTTLS with the relay",
    "relay_timeout": "seconds per relay connection attempt",
    "relay_helo": "name sent in EHLO to the relay (default: --hostname)",
    "retry_for": "seconds to keep retrying a temporary delivery failure before the dead letter",
    "retry_backoff": "first retry delay in seconds (doubles, up to 60)",
    "sender": "From address when an email.send message names none",
    "max_deliveries": "deliveries in progress at once",
    "max_queue_age": "how long mail nobody reads waits before it is bounced (30s, 90m, 12h, 5d)",
    "queue_warn_after": "log the queue of unread mail once its oldest is this old (30s, 10m...)",
    "queue_check_interval": "seconds between looks at the queue of unread mail",
}
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration(text: str) -> float:
    """Seconds from ``90``, ``30s``, ``10m``, ``12h`` or ``5d``."""
    text = text.strip().lower()
    unit = UNITS.get(text[-1:])
    try:
        seconds = float(text[:-1]) * unit if unit else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use 30s, 10m, 12h, 5d)") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be positive: {text!r}")
    return seconds


# Settings whose flag takes something other than the type of its default.
KINDS = {"submission_port": int, "max_queue_age": duration, "queue_warn_after": duration}


def build_parser() -> argparse.ArgumentParser:
    """One flag per setting, each with a SWITCHROOM_EMAIL_* environment variable."""
    parser = argparse.ArgumentParser(
        prog="switchroom email",
        description="Run the email server (inbound SMTP, outbound through a relay) until SIGTERM or SIGINT.",
    )
    add_common_arguments(parser)
    for f in dataclasses.fields(Settings):
        flags = ["--" + f.name.replace("_", "-")]
        extra: dict = {"kind": KINDS[f.name]} if f.name in KINDS else {}
        if isinstance(f.default, tuple):
            flags.append({"domains": "--domain", "addresses": "--address"}[f.name])
            extra = {"dest": f.name, "kind": _csv, "action": _Extend}
        add_option(parser, *flags, env_name="email_" + f.name, default=f.default, help=HELP[f.name], **extra)
    return parser


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


class _Extend(argparse.Action):
    """Repeated ``--domain a --domain b`` (or comma lists) add up."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        current = getattr(namespace, self.dest)
        fresh = getattr(namespace, "_seen_" + self.dest, False)
        setattr(namespace, self.dest, (current if fresh else ()) + tuple(values))
        setattr(namespace, "_seen_" + self.dest, True)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The ``Settings`` the parsed flags describe."""
    return Settings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Settings)})


def main(argv: list[str]) -> int:
    """Entry point of ``switchroom email``."""
    args = build_parser().parse_args(argv)
    return run_server(args, "email", lambda layer: EmailServer(layer, settings_from_args(args)))
