"""Settings of the email server: where it listens, what it accepts, its limits, its relay.

Each field's flag and ``SWITCHROOM_EMAIL_*`` environment variable are generated from its
``option`` (see ``switchroom.shared.options``); ``docs/email.md`` lists them. Relay
credentials come only from the environment, never from flags.
"""

from dataclasses import dataclass

from switchroom.shared.options import duration, option, shown_duration


@dataclass
class Settings:
    """What ``EmailServer`` needs besides a layer."""

    bind: str = option("127.0.0.1", help="address to listen on")
    # The MX listener: mail for our domains and addresses, no AUTH.
    port: int = option(
        2525, help="SMTP port of the MX listener: no AUTH, local domains only (0 = any free port)"
    )
    # The submission listener (None: none): AUTH required, mail for anywhere.
    submission_port: int | None = option(
        None, help="SMTP port of the submission listener: AUTH required, may relay (none by default)"
    )
    # Also Reporting-MTA in bounces and, by default, the name in EHLO to the relay.
    hostname: str = option("switchroom.localhost", help="name in the SMTP greeting and in bounces")
    # Mail is accepted only for these domains and addresses (never an open relay).
    domains: tuple[str, ...] = option(
        (),
        help="domains to accept mail for (--domain, repeatable, or a comma list)",
        aliases=("--domain",),
        repeat=True,
    )
    addresses: tuple[str, ...] = option(
        (),
        help="single addresses to accept mail for (--address, repeatable, or a comma list)",
        aliases=("--address",),
        repeat=True,
    )
    max_message_size: int = option(25 * 1024 * 1024, help="message bytes (more: 552)")
    max_recipients: int = option(100, help="recipients per message (more: 452)")
    max_line_length: int = option(1001, help="bytes per line, CRLF included (more: 500)")
    command_timeout: float = option(
        60.0, help="seconds to complete each command; during DATA, seconds without any bytes"
    )
    session_timeout: float = option(600.0, help="seconds a whole SMTP session may last (then 421)")
    max_connections_per_ip: int = option(20, help="simultaneous connections per client IP (more: 421)")
    shutdown_grace: float = option(
        10.0, help="seconds a stop leaves sessions to finish the message in progress"
    )
    tls_cert: str | None = option(None, help="certificate (PEM) for STARTTLS")
    tls_key: str | None = option(None, help="private key (PEM) for STARTTLS")
    require_starttls: bool = option(False, help="refuse mail until the client has started TLS")
    auth_file: str | None = option(
        None,
        help="file of user:password lines, the submission listener's users (or SWITCHROOM_SMTP_AUTH_FILE)",
    )
    auth_without_tls: bool = option(False, help="allow AUTH before STARTTLS (not recommended)")
    relay_host: str | None = option(
        None, help="SMTP relay for outbound mail (user/password from SWITCHROOM_RELAY_USER/_PASSWORD)"
    )
    relay_port: int = option(25, help="relay port")
    relay_tls: bool = option(False, help="connect to the relay with implicit TLS")
    relay_starttls: bool = option(False, help="STARTTLS with the relay")
    relay_timeout: float = option(30.0, help="seconds per relay connection attempt")
    relay_helo: str | None = option(None, help="name sent in EHLO to the relay (default: --hostname)")
    retry_for: float = option(
        600.0, help="seconds to keep retrying a temporary delivery failure before the dead letter"
    )
    retry_backoff: float = option(1.0, help="first retry delay in seconds (doubles, up to 60)")
    sender: str = option("switchroom@localhost", help="From address when an email.send message names none")
    max_deliveries: int = option(10, help="deliveries in progress at once")
    # Mail nobody reads waits this long before it is bounced to its sender; the queue's age
    # is logged from ``queue_warn_after`` on.
    max_queue_age: float = option(
        5 * 86_400.0,
        help="how long mail nobody reads waits before it is bounced (30s, 90m, 12h, 5d)",
        parse=duration,
        show=shown_duration,
    )
    queue_warn_after: float = option(
        600.0,
        help="log the queue of unread mail once its oldest is this old (30s, 10m...)",
        parse=duration,
        show=shown_duration,
    )
    queue_check_interval: float = option(30.0, help="seconds between looks at the queue of unread mail")
