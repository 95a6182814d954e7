"""`clickstream stack up | down | status`: bring the real local stack up, report on it, tear it down.

Services on loopback addresses are started when nothing answers there; an address elsewhere, or a
real service already answering (docker compose, say), is used as it is and nothing is started.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clickstream_dagster.settings import Settings
from spark.jars import SPARK_VERSION

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
from .spark_jars import fetch_spark_jars
from .versions import ELASTICSEARCH_VERSION, KAFKA_VERSION


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


@dataclass(frozen=True)
class _Service:
    """What `up` and `status` need to know of one service; the three differ only in these."""

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


def _kafka(settings: Settings) -> _Service:
    return _Service(
        kafka.NAME, "Kafka", KAFKA_VERSION, settings.kafka_bootstrap_servers,
        "KAFKA_BOOTSTRAP_SERVERS", settings.kafka_is_local,
        "start that cluster, or unset the variable to use a local broker",
        ((settings.kafka_port, "Kafka"), (settings.kafka_port + 1, "the Kafka controller")),
        lambda timeout: kafka.probe(settings, timeout), lambda: kafka.start(settings), 90,
        lambda health, ours: KAFKA_VERSION if ours else "?")


def _elasticsearch(settings: Settings) -> _Service:
    port = settings.elasticsearch_port
    return _Service(
        elasticsearch.NAME, "Elasticsearch", ELASTICSEARCH_VERSION,
        settings.elasticsearch_url, "ELASTICSEARCH_URL", settings.elasticsearch_is_local,
        "start that cluster, check its credentials, or unset the variable to use a local node",
        ((port, "Elasticsearch"), (port + 100, "the Elasticsearch transport")),
        lambda timeout: elasticsearch.probe(settings, timeout),
        lambda: elasticsearch.start(settings), 180, lambda health, ours: health.version)


def _spark_connect(settings: Settings) -> _Service:
    return _Service(
        spark_connect.NAME, "Spark Connect", SPARK_VERSION, settings.spark_remote or "",
        "CLICKSTREAM_SPARK_REMOTE", settings.spark_connect_is_local,
        "start that server, or unset the variable to use a local one",
        ((settings.spark_connect_port, "Spark Connect"),),
        lambda timeout: spark_connect.probe(settings, timeout),
        lambda: spark_connect.start(settings), 180, lambda health, ours: health.version)


def up(settings: Settings) -> list[ServiceStatus]:
    """Start whatever is not already answering, create the topics, and fetch Spark's jars."""
    check_free_space(settings.cache_dir)
    check_free_space(settings.state_dir)
    kafka_status = _up(settings, _kafka(settings))
    es_status = _up(settings, _elasticsearch(settings))
    created = kafka.ensure_topics(settings)
    if created:
        print(f"  created topics: {', '.join(created)}", flush=True)
    if not settings.spark_remote:  # runs start Spark in-process: they only need the jars
        return [kafka_status, es_status, _spark_status(fetch_spark_jars(settings))]
    return [kafka_status, es_status, _up(settings, _spark_connect(settings))]


def status(settings: Settings) -> list[ServiceStatus]:
    spark = (_status(settings, _spark_connect(settings)) if settings.spark_remote
             else _spark_status(None))
    return [_status(settings, _kafka(settings)), _status(settings, _elasticsearch(settings)), spark]


def down(settings: Settings) -> list[str]:
    """Stop only the processes that `up` started (tracked by pid file); returns their names."""
    stopped = []
    for name in (spark_connect.NAME, elasticsearch.NAME, kafka.NAME):
        if stop_process(settings.state_dir, name):
            stopped.append(name)
    return stopped


def _up(settings: Settings, service: _Service) -> ServiceStatus:
    current = _status(settings, service)
    if current.state in ("running", "external"):
        return current
    if not service.is_local:
        raise StackError(
            f"{service.title} at {service.variable}={service.address} does not answer "
            f"(or is not healthy). The stack only starts services on 127.0.0.1: "
            f"{service.remote_hint}.")
    if current.state == "unhealthy":  # ours, still starting from an earlier `up`
        process = read_pid_file(settings.state_dir, service.name)
        wait_for(service.label, lambda: service.probe(2), service=process,
                 timeout_s=service.startup_timeout_s)
        return _status(settings, service)
    for port, what in service.ports:
        _refuse_foreign_port(port, what, service.variable)
    started = time.monotonic()
    print(f"  starting {service.label} on 127.0.0.1:{service.ports[0][0]} ...", flush=True)
    service.start()
    print(f"  {service.title} healthy after {time.monotonic() - started:.1f} s", flush=True)
    return _status(settings, service)


def _status(settings: Settings, service: _Service) -> ServiceStatus:
    ours = read_pid_file(settings.state_dir, service.name)
    ours = ours if ours and ours.is_alive() else None
    health = service.probe(3)
    if health is None:
        return ServiceStatus(service.name, "unhealthy" if ours else "stopped", service.version,
                             service.address, ours and ours.pid, None, ours and ours.log)
    if ours is None:
        return ServiceStatus(service.name, "external", service.version_of(health, False),
                             service.address)
    return ServiceStatus(service.name, "running", service.version_of(health, True),
                         service.address, ours.pid, ours.rss_bytes() / 1024**2, ours.log)


def _refuse_foreign_port(port: int, what: str, variable: str) -> None:
    if port_is_open("127.0.0.1", port):
        raise StackError(
            f"Port {port} on 127.0.0.1 is taken by {port_owner(port)}, which is not {what}. "
            f"Stop that process, or set {variable} to use a different port."
        )


def _spark_status(jars: list[str] | None) -> ServiceStatus:
    detail = f"{len(jars)} jars, in-process" if jars is not None else "in-process (SPARK_MASTER)"
    return ServiceStatus("spark", "library", SPARK_VERSION, detail)
