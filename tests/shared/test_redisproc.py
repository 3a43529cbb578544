"""The loopback port helpers that tests, the bench and `up` use."""

import socket

from switchroom.shared.redisproc import free_ports


def test_free_ports_are_distinct_and_each_can_be_bound() -> None:
    for _ in range(200):
        ports = free_ports(4)
        assert len(set(ports)) == 4
    with socket.socket() as a, socket.socket() as b:
        first, second = free_ports(2)
        a.bind(("127.0.0.1", first))
        b.bind(("127.0.0.1", second))
