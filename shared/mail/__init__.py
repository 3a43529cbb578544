"""Email as pure code, for the email server and for workers alike: an SMTP transaction
into an ``email.receive`` and back (``parse``), an ``email.send`` into MIME (``compose``),
and bounces (``dsn``). It needs only the standard library, so a worker or a script that
reads ``email.receive`` never imports the SMTP server's dependencies.

    from switchroom.shared.mail import received

    mail = received(message)     # an email.receive from the layer, every field parsed
"""

from .dsn import dsn_send
from .parse import idempotency_key, incoming, received

__all__ = ["dsn_send", "idempotency_key", "incoming", "received"]
