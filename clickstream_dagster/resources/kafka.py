import dagster as dg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from ..clients import kafka_admin, retention_ms
from ..settings import Settings


class KafkaResource(dg.ConfigurableResource):
    """The Kafka cluster the events arrive on."""

    bootstrap_servers: str
    topic: str
    dlq_topic: str
    consumer_group: str  # where the ingest commits the offsets it has landed

    def settings(self) -> Settings:
        return Settings(kafka_bootstrap_servers=self.bootstrap_servers, topic=self.topic,
                        dlq_topic=self.dlq_topic)

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
        consumer = Consumer({"bootstrap.servers": self.bootstrap_servers,
                             "group.id": "clickstream-offset-probe",
                             "enable.auto.commit": False})
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
        consumer = Consumer({"bootstrap.servers": self.bootstrap_servers,
                             "group.id": self.consumer_group, "enable.auto.commit": False})
        try:
            committed = consumer.committed([TopicPartition(self.topic, p) for p in partitions],
                                           timeout=timeout_s)
        finally:
            consumer.close()
        return {tp.partition: max(tp.offset, 0) for tp in committed}
