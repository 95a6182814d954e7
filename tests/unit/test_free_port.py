"""The tests' free ports lie outside the kernel's ephemeral range, so no outgoing connection can
take one between the check and the service's bind (a cluster worker once lost its port so)."""

import socket

from tests.helpers import LOWEST_PORT, _first_ephemeral_port, free_port


def test_a_free_port_range_lies_below_the_ephemeral_ports_and_can_be_bound():
    first_ephemeral = _first_ephemeral_port()
    for _ in range(20):
        port = free_port(pairs=4, also=(100,))
        wanted = [port, port + 1, port + 2, port + 3, port + 100]
        if first_ephemeral - 100 > LOWEST_PORT:
            assert port >= LOWEST_PORT and max(wanted) < first_ephemeral
        for candidate in wanted:
            with socket.socket() as s:
                s.bind(("127.0.0.1", candidate))
