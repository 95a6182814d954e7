"""The services the local stack can start, as `up`, `status` and the supervisor see them: they
differ only in these fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config.settings import Settings
from spark.jars import SPARK_VERSION

from . import elasticsearch, kafka, spark_cluster, spark_connect
from .versions import ELASTICSEARCH_VERSION, KAFKA_VERSION


@dataclass(frozen=True)
class Service:
    name: str
    title: str  # "Kafka"
    version: str
    address: str
    variable: str  # the setting that points at the service
    is_local: bool  # only loopback addresses are ever started
    remote_hint: str  # what to do when a service elsewhere does not answer
    ports: tuple[tuple[int, str], ...]  # (port, what must listen there) before a start
    probe: Callable[[float], Any]  # timeout -> health or None
    start: Callable[[], Any]
    startup_timeout_s: float
    version_of: Callable[[Any, bool], str]  # (health, started by us) -> version shown

    @property
    def label(self) -> str:
        return f"{self.title} {self.version}"


def kafka_service(settings: Settings) -> Service:
    """The cluster as `up` starts it (every broker), and its first broker as the supervisor and
    `status` see it."""
    ports = [p for n in range(1, settings.kafka_brokers + 1) for p in kafka.broker_ports(settings, n)]
    first = kafka.one_broker(settings, 1) if settings.kafka_brokers > 1 else settings
    return Service(
        kafka.NAME, "Kafka", KAFKA_VERSION, settings.kafka_bootstrap_servers,
        "KAFKA_BOOTSTRAP_SERVERS", settings.kafka_is_local,
        "start that cluster, or unset the variable to use a local broker", tuple(ports),
        lambda timeout: kafka.probe(first, timeout), lambda: kafka.start(settings), 90,
        lambda health, ours: KAFKA_VERSION if ours else "?")


def kafka_broker_service(settings: Settings, number: int) -> Service:
    """Broker `number` of a local cluster, after the first."""
    port = kafka.broker_port(settings, number)
    return Service(
        kafka.broker_name(number), f"Kafka broker {number}", KAFKA_VERSION, f"127.0.0.1:{port}",
        "CLICKSTREAM_KAFKA_BROKERS", settings.kafka_is_local, "start that cluster's brokers",
        kafka.broker_ports(settings, number),
        lambda timeout: kafka.probe(kafka.one_broker(settings, number), timeout),
        lambda: kafka.brokers(settings).start_one(number), 90,
        lambda health, ours: KAFKA_VERSION if ours else "?")


def kafka_services(settings: Settings) -> list[Service]:
    return [kafka_service(settings),
            *(kafka_broker_service(settings, n) for n in range(2, settings.kafka_brokers + 1))]


def elasticsearch_service(settings: Settings) -> Service:
    """The cluster as `up` starts it (every node), and its first node as the supervisor and
    `status` see it."""
    ports = [p for n in range(1, settings.elasticsearch_nodes + 1)
             for p in elasticsearch.node_ports(settings, n)]
    first = elasticsearch.one_node(settings, 1) if settings.elasticsearch_nodes > 1 else settings
    return Service(
        elasticsearch.NAME, "Elasticsearch", ELASTICSEARCH_VERSION,
        settings.elasticsearch_url, "ELASTICSEARCH_URL", settings.elasticsearch_is_local,
        "start that cluster, check its credentials, or unset the variable to use a local node",
        tuple(ports), lambda timeout: elasticsearch.probe(first, timeout),
        lambda: elasticsearch.start(settings), 180, lambda health, ours: health.version)


def elasticsearch_node_service(settings: Settings, number: int) -> Service:
    """Node `number` of a local cluster, after the first."""
    port = elasticsearch.node_port(settings, number)
    return Service(
        elasticsearch.node_name(number), f"Elasticsearch node {number}", ELASTICSEARCH_VERSION,
        f"http://127.0.0.1:{port}", "CLICKSTREAM_ES_NODES", settings.elasticsearch_is_local,
        "start that cluster's nodes", elasticsearch.node_ports(settings, number),
        lambda timeout: elasticsearch.probe(elasticsearch.one_node(settings, number), timeout),
        lambda: elasticsearch.nodes(settings).start_one(number), 180,
        lambda health, ours: health.version)


def elasticsearch_services(settings: Settings) -> list[Service]:
    return [elasticsearch_service(settings),
            *(elasticsearch_node_service(settings, n)
              for n in range(2, settings.elasticsearch_nodes + 1))]


def spark_connect_service(settings: Settings) -> Service:
    return Service(
        spark_connect.NAME, "Spark Connect", SPARK_VERSION, settings.spark_remote or "",
        "CLICKSTREAM_SPARK_REMOTE", settings.spark_connect_is_local,
        "start that server, or unset the variable to use a local one",
        ((settings.spark_connect_port, "Spark Connect"),),
        lambda timeout: spark_connect.probe(settings, timeout),
        lambda: spark_connect.start(settings), 180, lambda health, ours: health.version)


def spark_master_service(settings: Settings) -> Service:
    port = settings.spark_master_port
    return Service(
        spark_cluster.MASTER, "Spark master", SPARK_VERSION, settings.spark_master, "SPARK_MASTER",
        settings.spark_cluster_is_local,
        "start that cluster, or set SPARK_MASTER=local[*] to run Spark inside its driver",
        ((port, "the Spark master"), (spark_cluster.master_ui_port(settings), "the Spark master's UI")),
        lambda timeout: spark_cluster.probe_master(settings, timeout),
        lambda: spark_cluster.start_master(settings), 60, lambda health, ours: SPARK_VERSION)


def spark_worker_service(settings: Settings, number: int) -> Service:
    port = spark_cluster.worker_port(settings, number)
    return Service(
        spark_cluster.worker_name(number), f"Spark worker {number}", SPARK_VERSION,
        f"127.0.0.1:{port}", "CLICKSTREAM_SPARK_WORKERS", settings.spark_cluster_is_local,
        "start that cluster's workers", ((port, f"Spark worker {number}"),),
        lambda timeout: spark_cluster.probe_worker(settings, number, timeout),
        lambda: spark_cluster.start_worker(settings, number), 60, lambda health, ours: SPARK_VERSION)


def spark_cluster_services(settings: Settings) -> list[Service]:
    """The standalone master and its workers, when SPARK_MASTER is one on loopback."""
    if not settings.spark_cluster_is_local:
        return []
    return [spark_master_service(settings),
            *(spark_worker_service(settings, n) for n in range(1, settings.spark_workers + 1))]


def local_services(settings: Settings) -> list[Service]:
    """The services this stack would start itself (on loopback addresses), in start order."""
    services = [*kafka_services(settings), *elasticsearch_services(settings),
                *spark_cluster_services(settings)]
    if settings.spark_remote:
        services.append(spark_connect_service(settings))
    return [service for service in services if service.is_local]
