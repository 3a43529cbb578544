"""The email interface server: inbound SMTP (aiosmtpd) onto the layer, and outbound
delivery of ``email.send`` messages through a relay.

    server = EmailServer(layer, Settings(port=2525, domains=("example.com",)))
    await server.start()     # SMTP on 127.0.0.1:2525, delivering email.send
    await server.stop()      # graceful: a message in progress may finish

    whole = received(message)   # an email.receive from the layer, parsed

``data`` reads SMTP DATA; the translations between MIME and messages live in
``switchroom.shared.mail`` (pure, importable without aiosmtpd; ``received`` is re-exported
here); ``inbound`` and ``outbound`` are the I/O around them; ``cli`` is ``switchroom email``.
"""

from switchroom.shared.mail import received

from .server import EmailServer
from .settings import Settings

__all__ = ["EmailServer", "Settings", "received"]
