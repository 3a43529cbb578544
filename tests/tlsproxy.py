"""TLS in front of a plain redis-server, for the tests of ``rediss://`` URLs.

The redis-server the tests use is built without TLS, so ``TlsProxy`` terminates TLS on
a loopback port and forwards the bytes to the plain port: our client makes a real TLS
handshake and verifies a real certificate chain. ``make_certificates`` writes a
throwaway CA, server and client certificates (and a rogue CA nobody trusts) as PEM files.
"""

import asyncio
import datetime
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from switchroom.shared.redisproc import free_port

KEY_PASSWORD = "client-key-passphrase"


@dataclass
class Certificates:
    """Paths of the PEM files ``make_certificates`` wrote."""

    ca: Path
    server_cert: Path
    server_key: Path
    wrong_name_cert: Path
    wrong_name_key: Path
    rogue_ca: Path
    rogue_cert: Path
    rogue_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    names: tuple[x509.GeneralName, ...] = (),
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    """A certificate for ``key``: a self-signed CA when ``issuer`` is None, else a leaf."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0].subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()), critical=False
        )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(
    folder: Path,
    stem: str,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey | None,
    password: str | None = None,
) -> tuple[Path, Path | None]:
    cert_path = folder / f"{stem}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if key is None:
        return cert_path, None
    encryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    key_path = folder / f"{stem}-key.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_path, key_path


def make_certificates(folder: Path) -> Certificates:
    """A CA with a server certificate for 127.0.0.1/localhost, one for another name only,
    a client certificate whose key is encrypted with ``KEY_PASSWORD``, and a rogue CA with
    a server certificate for 127.0.0.1 that no client trusts."""
    loopback = (x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"))
    server_use = ExtendedKeyUsageOID.SERVER_AUTH
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _issue("Switchroom test CA", ca_key, None)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _issue("127.0.0.1", server_key, (ca, ca_key), names=loopback, usage=server_use)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _issue(
        "redis.example", other_key, (ca, ca_key), names=(x509.DNSName("redis.example"),), usage=server_use
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _issue("switchroom client", client_key, (ca, ca_key), usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    rogue_ca_key = ec.generate_private_key(ec.SECP256R1())
    rogue_ca = _issue("Rogue CA", rogue_ca_key, None)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue = _issue("127.0.0.1", rogue_key, (rogue_ca, rogue_ca_key), names=loopback, usage=server_use)
    ca_path, _ = _write(folder, "ca", ca, None)
    server_cert, server_key_path = _write(folder, "server", server, server_key)
    other_cert, other_key_path = _write(folder, "other-name", other, other_key)
    client_cert, client_key_path = _write(folder, "client", client, client_key, KEY_PASSWORD)
    rogue_ca_path, _ = _write(folder, "rogue-ca", rogue_ca, None)
    rogue_cert, rogue_key_path = _write(folder, "rogue", rogue, rogue_key)
    return Certificates(
        ca=ca_path,
        server_cert=server_cert,
        server_key=server_key_path,
        wrong_name_cert=other_cert,
        wrong_name_key=other_key_path,
        rogue_ca=rogue_ca_path,
        rogue_cert=rogue_cert,
        rogue_key=rogue_key_path,
        client_cert=client_cert,
        client_key=client_key_path,
    )


def server_context(cert: Path, key: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The proxy's TLS settings; with ``client_ca`` it demands a client certificate from it."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class TlsProxy:
    """A TLS endpoint on 127.0.0.1 forwarding every connection to a plain Redis port.

    It runs its own event loop in a thread, so sync and async tests and subprocesses can
    all use it. ``handshakes`` counts completed TLS handshakes, so a test can tell TLS was
    really spoken.
    """

    def __init__(self, target_port: int, context: ssl.SSLContext) -> None:
        self.target_port = target_port
        self.context = context
        self.port = free_port()
        self.handshakes = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-proxy", daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        self._clients.add(client_writer)
        try:
            redis_reader, redis_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            await asyncio.gather(
                self._pipe(client_reader, redis_writer), self._pipe(redis_reader, client_writer)
            )
        except OSError:
            client_writer.close()
        finally:
            self._clients.discard(client_writer)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, ssl=self.context, ssl_handshake_timeout=5
        )

    async def _stop(self) -> None:
        """Stop listening and cut every client off; each pipe then ends by itself."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._clients):
            writer.transport.abort()
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=5)

    def start(self) -> Self:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
