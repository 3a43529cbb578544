"""Settings of the email server: where it listens, what it accepts, its limits, its relay.

Every setting has a flag (``cli.py``) and is listed in ``docs/email.md``. Relay
credentials come only from the environment, never from flags.
"""

from dataclasses import dataclass


@dataclass
class Settings:
    """What ``EmailServer`` needs besides a layer."""

    bind: str = "127.0.0.1"
    # The MX listener: mail for our domains and addresses, no AUTH.
    port: int = 2525
    # The submission listener (None: none): AUTH required, mail for anywhere.
    submission_port: int | None = None
    # The name in the greeting, in bounces (Reporting-MTA) and, by default, in EHLO to the relay.
    hostname: str = "switchroom.localhost"
    # Mail is accepted only for these domains and addresses (never an open relay).
    domains: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    max_message_size: int = 25 * 1024 * 1024
    max_recipients: int = 100
    max_line_length: int = 1001
    # Seconds to complete a command (during DATA: without any bytes arriving), and in all per session.
    command_timeout: float = 60.0
    session_timeout: float = 600.0
    max_connections_per_ip: int = 20
    # Seconds a stop (SIGTERM) leaves sessions to finish the message they are sending.
    shutdown_grace: float = 10.0
    tls_cert: str | None = None
    tls_key: str | None = None
    require_starttls: bool = False
    # AUTH users of the submission listener: a file of ``user:password`` lines.
    auth_file: str | None = None
    auth_without_tls: bool = False
    # Outbound delivery through a relay.
    relay_host: str | None = None
    relay_port: int = 25
    relay_tls: bool = False
    relay_starttls: bool = False
    relay_timeout: float = 30.0
    # The name sent in EHLO to the relay (None: ``hostname``).
    relay_helo: str | None = None
    retry_for: float = 600.0
    retry_backoff: float = 1.0
    sender: str = "switchroom@localhost"
    max_deliveries: int = 10
    # Mail nobody reads waits this long (seconds; the flag takes 5d, 12h...) before it is
    # bounced to its sender; the queue's age is logged from ``queue_warn_after`` on.
    max_queue_age: float = 5 * 86_400.0
    queue_warn_after: float = 600.0
    queue_check_interval: float = 30.0
