"""What an ingest query reads, where it writes, and how: the one home of the ingest's defaults.

Free of pyspark imports, so the CLI and the spark-submit entry point read the defaults without
starting anything.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field

from config.defaults import DEFAULT_CONSUMER_GROUP, DEFAULT_DLQ_TOPIC, DEFAULT_TOPIC, IP_TRUNCATE
from config.kafka import KafkaSecurity

from .. import lake_layout

if typing.TYPE_CHECKING:
    from config.settings import Settings

AVAILABLE_NOW = "available-now"
CONTINUOUS = "continuous"
# Per task, so per Kafka partition of a micro-batch: enough for the rare record over the contract's
# limit, far below what filled the server's heap.
OVERSIZED_BYTES_KEPT = 4 * 1024**2


@dataclass(frozen=True)
class IngestConfig:
    bootstrap_servers: str
    lake_root: str
    topic: str = DEFAULT_TOPIC
    dlq_topic: str = DEFAULT_DLQ_TOPIC
    # Each micro-batch commits the offsets it published to this consumer group, so Kafka's own
    # tools (kafka-consumer-groups, kcat) and the sensors see the ingest's lag, whatever the
    # lake's storage. Spark's checkpoint still decides where the query resumes.
    consumer_group: str = DEFAULT_CONSUMER_GROUP
    mode: str = AVAILABLE_NOW
    processing_time: str = "10 seconds"
    max_offsets_per_trigger: int | None = 1_000_000
    # Every micro-batch scans the whole dedup state for expired keys, and the state holds about
    # rate x watermark keys, so a long watermark slows every batch. The daily compaction dedups
    # whole days anyway.
    dedup_watermark: str = "10 minutes"
    starting_offsets: str = "earliest"
    state_partitions: int = 4  # fixed by the first run of a checkpoint
    first_day: str | None = None  # events before it are dead letters (out_of_range)
    future_days: int = 1  # events more days than this after their ingest day are dead letters
    # "truncate": IP addresses reach the lake as their network (/24, /48); "off": as sent.
    ip_anonymization: str = IP_TRUNCATE
    # Bytes of oversized records whose payload a task keeps in the micro-batch's cache; the writer
    # reads the rest back from the topic (see event_pass).
    oversized_bytes_kept: int = OVERSIZED_BYTES_KEPT
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    kafka_options: dict[str, str] = field(default_factory=dict)  # more of Spark's kafka.* options

    @classmethod
    def from_settings(cls, settings: Settings, **overrides) -> IngestConfig:
        """The ingest's configuration for the project's settings; `overrides` set its other
        fields."""
        return cls(bootstrap_servers=settings.kafka_bootstrap_servers, lake_root=settings.lake_dir,
                   topic=settings.topic, dlq_topic=settings.dlq_topic,
                   consumer_group=settings.consumer_group, first_day=settings.first_day,
                   ip_anonymization=settings.ip_anonymization,
                   kafka_security=settings.kafka_security, **overrides)

    def client_config(self, **more: str) -> dict[str, str]:
        """A confluent-kafka client's settings for this ingest's cluster, plus `more`."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.kafka_security.client_config(),
                **more}

    @property
    def spark_kafka_options(self) -> dict[str, str]:
        """Spark's Kafka source and sink options for this ingest's cluster."""
        return {"kafka.bootstrap.servers": self.bootstrap_servers,
                **self.kafka_security.spark_options(), **self.kafka_options}

    @property
    def landing(self) -> str:
        return lake_layout.landing(self.lake_root)

    @property
    def bad_rows(self) -> str:
        return lake_layout.bad_rows(self.lake_root)

    @property
    def checkpoint(self) -> str:
        return lake_layout.ingest_checkpoint(self.lake_root)

    @property
    def batch_log(self) -> str:
        return lake_layout.ingest_log(self.lake_root)
