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
# Per task, so per Kafka partition of a micro-batch: enough for the rare record over the contract's
# limit, far below what filled the server's heap.
OVERSIZED_BYTES_KEPT = 4 * 1024**2


KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_LOGIN_MODULES = {"SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
                  "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
                  "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule"}
SASL_MECHANISMS = tuple(_LOGIN_MODULES)


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client (producer, ingest, sensors, admin) authenticates and encrypts:
    SASL with a username and password, TLS with the CA bundle that signed the brokers'
    certificates. The default is plaintext, as on the local broker."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_location: str | None = None  # a PEM file; unset: the system's trusted CAs

    def __post_init__(self):
        if self.protocol not in KAFKA_PROTOCOLS:
            raise ValueError(f"Kafka security protocol {self.protocol!r} is not one of "
                             f"{', '.join(KAFKA_PROTOCOLS)}")
        if self.uses_sasl and self.sasl_mechanism not in SASL_MECHANISMS:
            raise ValueError(f"SASL mechanism {self.sasl_mechanism!r} is not one of "
                             f"{', '.join(SASL_MECHANISMS)}")
        if self.uses_sasl and not (self.username and self.password):
            raise ValueError(f"Kafka security protocol {self.protocol} needs a SASL username and "
                             f"password (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def client_config(self) -> dict[str, str]:
        """Settings of a confluent-kafka (librdkafka) client."""
        config = {"security.protocol": self.protocol}
        if self.uses_sasl:
            config |= {"sasl.mechanisms": self.sasl_mechanism, "sasl.username": self.username,
                       "sasl.password": self.password}
        if self.uses_tls and self.ca_location:
            config["ssl.ca.location"] = self.ca_location
        return config

    def spark_options(self) -> dict[str, str]:
        """The same for Spark's Kafka source and sink: Java client settings, prefixed `kafka.`.
        The CA file must be readable where Spark runs (every executor, on a cluster)."""
        options = {"kafka.security.protocol": self.protocol}
        if self.uses_sasl:
            quoted = {k: v.replace("\\", "\\\\").replace('"', '\\"')
                      for k, v in (("username", self.username), ("password", self.password))}
            options |= {"kafka.sasl.mechanism": self.sasl_mechanism,
                        "kafka.sasl.jaas.config": f'{_LOGIN_MODULES[self.sasl_mechanism]} required '
                                                  f'username="{quoted["username"]}" '
                                                  f'password="{quoted["password"]}";'}
        if self.uses_tls and self.ca_location:
            options |= {"kafka.ssl.truststore.type": "PEM",
                        "kafka.ssl.truststore.location": self.ca_location}
        return options


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
