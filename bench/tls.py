"""Layer throughput over TLS beside plain TCP, in the same run.

Send+receive pairs/s in batches of 100 (``bench.layer``'s workload) from a client process,
straight to a private redis-server, then over ``rediss://`` with the certificate verified.
The redis-server here is built without TLS, so TLS ends at the test suite's TLS proxy
(``tests/tlsproxy.py``, Python's ``ssl`` in a thread of this process) which forwards to
the same Redis: the TLS figure is the client's TLS cost plus the proxy's, a lower bound
for a Redis that speaks TLS itself.

    python -m bench.tls --seconds 5 --runs 3
"""

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
from pathlib import Path

from bench.layer import BATCH, _pairs
from switchroom.shared.redisproc import RedisProcess


def _client(url: str, seconds: float, out: "multiprocessing.Queue[int]") -> None:
    out.put(asyncio.run(_pairs(url, seconds, BATCH, "bench.tls")))


def _pairs_per_second(url: str, seconds: float) -> float:
    """Pairs/s of one client process (so the proxy's thread does not share its interpreter)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_client, args=(url, seconds, out))
    proc.start()
    try:
        return out.get(timeout=seconds + 60) / seconds
    finally:
        proc.join(30)


def run(seconds: float) -> dict[str, float]:
    """One run: plain pairs/s, then over TLS, against one Redis; and the ratio."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.tlsproxy import TlsProxy, make_certificates, server_context

    with tempfile.TemporaryDirectory() as folder, RedisProcess() as redis:
        certs = make_certificates(Path(folder))
        plain = _pairs_per_second(redis.url, seconds)
        with TlsProxy(redis.port, server_context(certs.server_cert, certs.server_key)) as proxy:
            url = f"rediss://127.0.0.1:{proxy.port}/0?ssl_ca_certs={certs.ca}"
            tls = _pairs_per_second(url, seconds)
            handshakes = proxy.handshakes
    if not handshakes:
        raise RuntimeError("no TLS handshake reached the proxy")
    return {"plain": plain, "tls": tls, "tls_over_plain": tls / plain, "handshakes": handshakes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    runs = [run(args.seconds) for _ in range(args.runs)]
    for key in ("plain", "tls", "tls_over_plain"):
        values = [r[key] for r in runs]
        print(f"{key:>15}: median {statistics.median(values):,.2f} ({min(values):,.2f}–{max(values):,.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
