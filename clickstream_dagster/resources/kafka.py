import functools
import time
from collections.abc import Callable
from typing import TypeVar

import dagster as dg
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    OffsetSpec,
    ResourceType,
)

from config.clients import kafka_admin, kafka_group_reader, retention_ms
from config.kafka import KafkaSecurity
from config.settings import Settings

# Answers of a cluster that is still settling, which pass within seconds: a group coordinator
# still loading (a new cluster has no offsets topic yet), or a partition whose new leader does not
# serve it yet (a topic just created, a broker just gone).
SETTLING = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION,
            KafkaError.LEADER_NOT_AVAILABLE)
SETTLING_PAUSE_S = 0.5
T = TypeVar("T")


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster the events arrive on."""

    bootstrap_servers: str
    topic: str
    dlq_topic: str
    consumer_group: str  # where the ingest commits the offsets it has landed
    # SASL and TLS (KAFKA_SECURITY_PROTOCOL and the KAFKA_SASL_* and KAFKA_SSL_* settings).
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None

    def security(self) -> KafkaSecurity:
        return KafkaSecurity(protocol=self.security_protocol, sasl_mechanism=self.sasl_mechanism,
                             username=self.sasl_username, password=self.sasl_password,
                             ca_location=self.ssl_ca_location)

    def admin(self) -> AdminClient:
        """The process's admin client for this cluster: a sensor tick builds no client of its own."""
        return _shared_admin(self.cluster())

    def cluster(self) -> Settings:
        """The settings that name the cluster and how to reach it, and nothing else."""
        return Settings(kafka_bootstrap_servers=self.bootstrap_servers).with_kafka_security(
            self.security())

    def set_retention(self, topic: str, days: int, timeout_s: float = 30) -> str:
        """Set the topic's `retention.ms` to `days` (0: forever); returns the value set."""
        value = retention_ms(days)
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("retention.ms", value, incremental_operation=AlterConfigOpType.SET)])
        admin = self.admin()  # must outlive its futures
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(timeout=timeout_s)
        return value

    def end_offsets(self, topic: str | None = None, timeout_s: float = 10) -> dict[int, int]:
        """High watermark per partition; read-only, it never commits offsets."""
        topic = topic or self.topic
        admin = self.admin()
        partitions = sorted(admin.list_topics(topic, timeout=timeout_s).topics[topic].partitions)

        def ask() -> dict[int, int]:
            futures = admin.list_offsets(
                {TopicPartition(topic, p): OffsetSpec.latest() for p in partitions},
                request_timeout=timeout_s)
            return {tp.partition: future.result().offset for tp, future in futures.items()}
        return until_settled(ask, timeout_s)

    def committed_offsets(self, partitions: list[int], timeout_s: float = 10) -> dict[int, int]:
        """The ingest's committed position per partition (0 where it has committed none): what
        `kafka-consumer-groups --describe --group <consumer_group>` shows."""
        # Asked of a consumer in the group, not the admin API: on a cluster whose group
        # coordinator is not ready yet, the admin call crashes the whole process (segfault).
        consumer = _shared_group_consumer(self.cluster(), self.consumer_group)
        committed = until_settled(lambda: consumer.committed(
            [TopicPartition(self.topic, p) for p in partitions], timeout=timeout_s), timeout_s)
        # A partition the group has never committed answers a negative sentinel offset.
        return {tp.partition: max(tp.offset, 0) for tp in committed}


def until_settled(call: Callable[[], T], timeout_s: float) -> T:
    """`call`, asked again while the cluster answers that it is settling, for about `timeout_s`;
    any other error, or the last settling one, is raised."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except KafkaException as exc:
            if exc.args[0].code() not in SETTLING or time.monotonic() > deadline:
                raise
            time.sleep(SETTLING_PAUSE_S)


# One client of each kind per cluster, kept by the process (the code server's, for sensors):
# clients are thread-safe and reconnect on their own. A few clusters at most (tests point at
# several); one that falls out of the cache is closed when it is collected.
@functools.lru_cache(maxsize=8)
def _shared_admin(cluster: Settings) -> AdminClient:
    return kafka_admin(cluster)


@functools.lru_cache(maxsize=8)
def _shared_group_consumer(cluster: Settings, group: str) -> Consumer:
    return kafka_group_reader(cluster, group)
