"""What an ingest query reads, where it writes, and how: the one home of the ingest's defaults.

Free of pyspark imports, so settings, the CLI and the spark-submit entry point read the defaults
without starting anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import lake_layout

AVAILABLE_NOW = "available-now"
CONTINUOUS = "continuous"
# How the client's IP address reaches the lake: truncated to its network (the default), or as
# sent. Dead letters keep the original bytes, as they must to be replayed.
IP_TRUNCATE = "truncate"
IP_KEEP = "off"
IP_MODES = (IP_TRUNCATE, IP_KEEP)


@dataclass(frozen=True)
class IngestConfig:
    bootstrap_servers: str
    lake_root: str
    topic: str = "clickstream"
    dlq_topic: str = "clickstream.dlq"
    # Each micro-batch commits the offsets it published to this consumer group, so Kafka's own
    # tools (kafka-consumer-groups, kcat) and the sensors see the ingest's lag, whatever the
    # lake's storage. Spark's checkpoint still decides where the query resumes.
    consumer_group: str = "clickstream-ingest"
    mode: str = AVAILABLE_NOW
    processing_time: str = "10 seconds"
    max_offsets_per_trigger: int | None = 1_000_000
    dedup_watermark: str = "1 hour"
    starting_offsets: str = "earliest"
    state_partitions: int = 4  # fixed by the first run of a checkpoint
    first_day: str | None = None  # events before it are dead letters (out_of_range)
    future_days: int = 1  # events more days than this after their ingest day are dead letters
    # "truncate": IP addresses reach the lake as their network (/24, /48); "off": as sent.
    ip_anonymization: str = IP_TRUNCATE
    kafka_options: dict[str, str] = field(default_factory=dict)  # e.g. kafka.security.protocol

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
