"""The ingest's position as a Kafka consumer group: the standard place every Kafka tool reads lag.

Spark's checkpoint decides where the query resumes; the group only publishes how far the lake has
got. Each micro-batch commits its end offsets after its Delta commits, so the group never claims
records the lake does not hold. A crash between the two leaves the group behind, never ahead: the
next run commits again (committing the same offsets twice is harmless).
"""

from __future__ import annotations

from .config import IngestConfig


def publish(config: IngestConfig, end_offsets: dict[str, int]) -> None:
    """Commit `end_offsets` (partition -> next offset to read) as the group's position."""
    from confluent_kafka import Consumer, TopicPartition

    if not end_offsets:
        return
    # A consumer that never subscribes is not a group member: it commits for an empty group
    # without a rebalance, and Kafka tools show the group's lag as usual.
    consumer = Consumer(config.client_config(**{"group.id": config.consumer_group,
                                                "enable.auto.commit": "false"}))
    try:
        consumer.commit(offsets=[TopicPartition(config.topic, int(p), int(o))
                                 for p, o in sorted(end_offsets.items(), key=lambda i: int(i[0]))],
                        asynchronous=False)
    finally:
        consumer.close()
