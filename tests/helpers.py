"""Small helpers shared by tests."""

import socket


def free_port(pairs: int = 1) -> int:
    """A loopback port p such that p .. p+pairs-1 are all free."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if all(_is_free(port + i) for i in range(pairs)) and port + pairs < 65535:
            return port
    raise RuntimeError("no free loopback port")


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
