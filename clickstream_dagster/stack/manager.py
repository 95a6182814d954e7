"""`clickstream stack up | down | status`: bring the real local stack up, report on it, tear it down.

Services on loopback addresses are started when nothing answers there; an address elsewhere, or a
real service already answering (docker compose, say), is used as it is and nothing is started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..settings import Settings
from . import elasticsearch, kafka, spark_connect
from .errors import StackError
from .process import (
    check_free_space,
    port_is_open,
    port_owner,
    read_pid_file,
    stop_process,
    wait_for,
)
from .spark_jars import spark_jars
from .versions import ELASTICSEARCH_VERSION, KAFKA_VERSION, SPARK_VERSION


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "running", "external", "stopped" or "unhealthy"
    version: str
    address: str
    pid: int | None = None
    rss_mib: float | None = None
    log: str | None = None

    def line(self) -> str:
        pid = f"pid {self.pid}" if self.pid else "-"
        rss = f"{self.rss_mib:.0f} MiB" if self.rss_mib else "-"
        return (f"{self.name:<14} {self.state:<10} {self.version:<10} {self.address:<26} "
                f"{pid:<11} {rss:<9} {self.log or ''}")


HEADER = f"{'service':<14} {'state':<10} {'version':<10} {'address':<26} {'process':<11} " \
         f"{'rss':<9} log"


def up(settings: Settings) -> list[ServiceStatus]:
    """Start whatever is not already answering, create the topics, and fetch Spark's jars."""
    check_free_space(settings.cache_dir)
    check_free_space(settings.state_dir)
    kafka_status = _up_kafka(settings)
    es_status = _up_elasticsearch(settings)
    created = kafka.ensure_topics(settings)
    if created:
        print(f"  created topics: {', '.join(created)}", flush=True)
    if not settings.spark_remote:  # runs start Spark in-process: they only need the jars
        return [kafka_status, es_status, _spark_status(spark_jars(settings))]
    return [kafka_status, es_status, _up_spark_connect(settings)]


def status(settings: Settings) -> list[ServiceStatus]:
    spark = _spark_connect_status(settings) if settings.spark_remote else _spark_status(None)
    return [_kafka_status(settings), _elasticsearch_status(settings), spark]


def down(settings: Settings) -> list[str]:
    """Stop only the processes that `up` started (tracked by pid file); returns their names."""
    stopped = []
    for name in (spark_connect.NAME, elasticsearch.NAME, kafka.NAME):
        if stop_process(settings.state_dir, name):
            stopped.append(name)
    return stopped


def _up_kafka(settings: Settings) -> ServiceStatus:
    current = _kafka_status(settings)
    if current.state in ("running", "external"):
        return current
    if not settings.kafka_is_local:
        raise StackError(
            f"Kafka at KAFKA_BOOTSTRAP_SERVERS={settings.kafka_bootstrap_servers} does not answer. "
            f"The stack only starts services on 127.0.0.1: start that cluster, or unset the "
            f"variable to use a local broker."
        )
    if current.state == "unhealthy":  # ours, still starting from an earlier `up`
        service = read_pid_file(settings.state_dir, kafka.NAME)
        wait_for("Kafka", lambda: kafka.probe(settings, 2), service=service, timeout_s=90)
        return _kafka_status(settings)
    port = settings.kafka_port
    _refuse_foreign_port(port, "Kafka", "KAFKA_BOOTSTRAP_SERVERS")
    _refuse_foreign_port(port + 1, "the Kafka controller", "KAFKA_BOOTSTRAP_SERVERS")
    started = time.monotonic()
    print(f"  starting Kafka {KAFKA_VERSION} on 127.0.0.1:{port} ...", flush=True)
    kafka.start(settings)
    print(f"  Kafka healthy after {time.monotonic() - started:.1f} s", flush=True)
    return _kafka_status(settings)


def _up_elasticsearch(settings: Settings) -> ServiceStatus:
    current = _elasticsearch_status(settings)
    if current.state in ("running", "external"):
        return current
    if not settings.elasticsearch_is_local:
        raise StackError(
            f"Elasticsearch at ELASTICSEARCH_URL={settings.elasticsearch_url} does not answer (or "
            f"is not healthy). The stack only starts services on 127.0.0.1: start that cluster, "
            f"check its credentials, or unset the variable to use a local node."
        )
    if current.state == "unhealthy":
        service = read_pid_file(settings.state_dir, elasticsearch.NAME)
        wait_for("Elasticsearch", lambda: elasticsearch.probe(settings, 2), service=service,
                 timeout_s=180)
        return _elasticsearch_status(settings)
    port = settings.elasticsearch_port
    _refuse_foreign_port(port, "Elasticsearch", "ELASTICSEARCH_URL")
    _refuse_foreign_port(port + 100, "the Elasticsearch transport", "ELASTICSEARCH_URL")
    started = time.monotonic()
    print(f"  starting Elasticsearch {ELASTICSEARCH_VERSION} on 127.0.0.1:{port} ...", flush=True)
    elasticsearch.start(settings)
    print(f"  Elasticsearch healthy after {time.monotonic() - started:.1f} s", flush=True)
    return _elasticsearch_status(settings)


def _up_spark_connect(settings: Settings) -> ServiceStatus:
    current = _spark_connect_status(settings)
    if current.state in ("running", "external"):
        return current
    if not settings.spark_connect_is_local:
        raise StackError(
            f"Spark Connect at CLICKSTREAM_SPARK_REMOTE={settings.spark_remote} does not answer. "
            f"The stack only starts services on 127.0.0.1: start that server, or unset the "
            f"variable to use a local one.")
    if current.state == "unhealthy":
        service = read_pid_file(settings.state_dir, spark_connect.NAME)
        wait_for("Spark Connect", lambda: spark_connect.probe(settings, 2), service=service,
                 timeout_s=180)
        return _spark_connect_status(settings)
    _refuse_foreign_port(settings.spark_connect_port, "Spark Connect", "CLICKSTREAM_SPARK_REMOTE")
    started = time.monotonic()
    print(f"  starting Spark Connect {SPARK_VERSION} on 127.0.0.1:{settings.spark_connect_port} "
          f"(master {settings.spark_master}) ...", flush=True)
    spark_connect.start(settings)
    print(f"  Spark Connect healthy after {time.monotonic() - started:.1f} s", flush=True)
    return _spark_connect_status(settings)


def _spark_connect_status(settings: Settings) -> ServiceStatus:
    ours = read_pid_file(settings.state_dir, spark_connect.NAME)
    ours = ours if ours and ours.is_alive() else None
    health = spark_connect.probe(settings)
    address = settings.spark_remote or ""
    if health is None:
        return ServiceStatus(spark_connect.NAME, "unhealthy" if ours else "stopped", SPARK_VERSION,
                             address, ours and ours.pid, None, ours and ours.log)
    if ours is None:
        return ServiceStatus(spark_connect.NAME, "external", health.version, address)
    return ServiceStatus(spark_connect.NAME, "running", health.version, address, ours.pid,
                         ours.rss_bytes() / 1024**2, ours.log)


def _refuse_foreign_port(port: int, what: str, variable: str) -> None:
    if port_is_open("127.0.0.1", port):
        raise StackError(
            f"Port {port} on 127.0.0.1 is taken by {port_owner(port)}, which is not {what}. "
            f"Stop that process, or set {variable} to use a different port."
        )


def _kafka_status(settings: Settings) -> ServiceStatus:
    ours = read_pid_file(settings.state_dir, kafka.NAME)
    ours = ours if ours and ours.is_alive() else None
    health = kafka.probe(settings)
    address = settings.kafka_bootstrap_servers
    if health is None:
        return ServiceStatus(kafka.NAME, "unhealthy" if ours else "stopped", KAFKA_VERSION,
                             address, ours and ours.pid, None, ours and ours.log)
    if ours is None:
        return ServiceStatus(kafka.NAME, "external", "?", address)
    return ServiceStatus(kafka.NAME, "running", KAFKA_VERSION, address, ours.pid,
                         ours.rss_bytes() / 1024**2, ours.log)


def _elasticsearch_status(settings: Settings) -> ServiceStatus:
    ours = read_pid_file(settings.state_dir, elasticsearch.NAME)
    ours = ours if ours and ours.is_alive() else None
    health = elasticsearch.probe(settings)
    address = settings.elasticsearch_url
    if health is None:
        return ServiceStatus(elasticsearch.NAME, "unhealthy" if ours else "stopped",
                             ELASTICSEARCH_VERSION, address, ours and ours.pid, None,
                             ours and ours.log)
    if ours is None:
        return ServiceStatus(elasticsearch.NAME, "external", health.version, address)
    return ServiceStatus(elasticsearch.NAME, "running", health.version, address, ours.pid,
                         ours.rss_bytes() / 1024**2, ours.log)


def _spark_status(jars: list[str] | None) -> ServiceStatus:
    detail = f"{len(jars)} jars, in-process" if jars is not None else "in-process (SPARK_MASTER)"
    return ServiceStatus("spark", "library", SPARK_VERSION, detail)
