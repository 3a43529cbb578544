"""The email interface server: inbound SMTP (aiosmtpd) and outbound delivery via a relay.

    server = EmailServer(layer, Settings(port=2525, domains=("example.com",)))
    await server.start()

``parse`` and ``compose`` translate between SMTP/MIME and messages as pure code;
``inbound`` and ``outbound`` are the I/O around them.
"""

from .chunks import attachment_content, complete, raw_message, read_chunks
from .server import EmailServer
from .settings import Settings

__all__ = ["EmailServer", "Settings", "attachment_content", "complete", "raw_message", "read_chunks"]
