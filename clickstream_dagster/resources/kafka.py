import time

import dagster as dg
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from config.clients import kafka_admin, retention_ms
from config.kafka import KafkaSecurity
from config.settings import Settings

COORDINATOR_STARTING = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                        KafkaError.COORDINATOR_NOT_AVAILABLE)


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

    def settings(self) -> Settings:
        return Settings(kafka_bootstrap_servers=self.bootstrap_servers, topic=self.topic,
                        dlq_topic=self.dlq_topic).with_kafka_security(self.security())

    def admin(self):
        return kafka_admin(self.settings())

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
        metadata = self.admin().list_topics(topic, timeout=timeout_s)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer = Consumer(self.settings().kafka_client_config(**{
            "group.id": "clickstream-offset-probe", "enable.auto.commit": "false"}))
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                for p in partitions
            }
        finally:
            consumer.close()

    def committed_offsets(self, partitions: list[int], timeout_s: float = 10) -> dict[int, int]:
        """The ingest's committed position per partition (0 where it has committed none): what
        `kafka-consumer-groups --describe --group <consumer_group>` shows."""
        consumer = Consumer(self.settings().kafka_client_config(**{
            "group.id": self.consumer_group, "enable.auto.commit": "false"}))
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    committed = consumer.committed(
                        [TopicPartition(self.topic, p) for p in partitions], timeout=timeout_s)
                    break
                except KafkaException as exc:
                    # A new cluster answers "not coordinator" until its offsets topic exists.
                    if exc.args[0].code() not in COORDINATOR_STARTING or time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        finally:
            consumer.close()
        return {tp.partition: max(tp.offset, 0) for tp in committed}
