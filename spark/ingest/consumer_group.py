"""The ingest's position as a Kafka consumer group: the standard place every Kafka tool reads lag.

Spark's checkpoint decides where the query resumes; the group only publishes how far the lake has
got. Each micro-batch commits its end offsets after its Delta commits, so the group never claims
records the lake does not hold. A crash between the two leaves the group behind, never ahead: the
next run commits again (committing the same offsets twice is harmless).
"""

from __future__ import annotations

import time

from .config import IngestConfig

# A broker that just started loads its group coordinator before it takes commits; the commit
# retries what Kafka calls retriable for this long, then fails the micro-batch.
RETRY_S = 60


def publish(config: IngestConfig, end_offsets: dict[str, int], retry_s: float = RETRY_S) -> None:
    """Commit `end_offsets` (partition -> next offset to read) as the group's position."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    if not end_offsets:
        return
    # A consumer that never subscribes is not a group member: it commits for an empty group
    # without a rebalance, and Kafka tools show the group's lag as usual.
    consumer = Consumer(config.client_config(**{"group.id": config.consumer_group,
                                                "enable.auto.commit": "false"}))
    offsets = [TopicPartition(config.topic, int(p), int(o))
               for p, o in sorted(end_offsets.items(), key=lambda i: int(i[0]))]
    deadline, wait = time.monotonic() + retry_s, 0.5
    try:
        while True:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException as exc:
                if not (_retriable(exc) and time.monotonic() + wait < deadline):
                    raise
                time.sleep(wait)
                wait = min(wait * 2, 5.0)
    finally:
        consumer.close()


def _retriable(exc) -> bool:
    """A commit error that passes once the broker has started (or its coordinator moved)."""
    from confluent_kafka import KafkaError

    error = exc.args[0] if exc.args else None
    if not isinstance(error, KafkaError):
        return False
    return error.retriable() or error.code() in {
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR, KafkaError.REQUEST_TIMED_OUT, KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT, KafkaError._WAIT_COORD}
