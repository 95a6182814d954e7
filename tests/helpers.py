"""Small helpers shared by tests."""

import socket

from clickstream_dagster.stack.kafka import create_topics, delete_topics  # noqa: F401 (re-exported)


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


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60) -> list:
    """Read a topic from the beginning until `expected` messages arrived (or the time is up)."""
    import time
    import uuid

    from confluent_kafka import Consumer

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error() is None:
                    messages.append(msg)
        # Anything beyond `expected` would be a duplicate delivery: give it a moment to show up.
        messages.extend(m for m in consumer.consume(10_000, timeout=2.0) if m.error() is None)
    finally:
        consumer.close()
    return messages


def isolated_topics(settings):
    """Settings with a new, unique event topic and dead-letter topic name."""
    import dataclasses
    import uuid

    name = f"test-{uuid.uuid4().hex[:12]}"
    return dataclasses.replace(settings, topic=name, dlq_topic=f"{name}.dlq")

