"""`clickstream stack up | down | status`: bring the real local stack up, report on it, tear it down.

Services on loopback addresses are started when nothing answers there; an address elsewhere, or a
real service already answering (docker compose, say), is used as it is and nothing is started.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from config.settings import Settings
from spark.jars import SPARK_VERSION

from . import elasticsearch, kafka, spark_cluster, spark_connect, supervisor
from .errors import StackError
from .maven import fetch_spark_jars
from .process import (
    check_free_space,
    port_is_open,
    port_owner,
    read_pid_file,
    start_lock,
    stop_process,
    wait_for,
)
from .services import (
    Service,
    elasticsearch_services,
    kafka_services,
    spark_cluster_services,
    spark_connect_service,
)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "running", "external", "stopped" or "unhealthy"
    version: str
    address: str
    pid: int | None = None
    rss_mib: float | None = None
    log: str | None = None
    restarts: int | None = None  # by the supervisor, since `stack up`

    def line(self) -> str:
        pid = f"pid {self.pid}" if self.pid else "-"
        rss = f"{self.rss_mib:.0f} MiB" if self.rss_mib else "-"
        restarts = "-" if self.restarts is None else str(self.restarts)
        return (f"{self.name:<14} {self.state:<10} {self.version:<10} {self.address:<26} "
                f"{pid:<11} {rss:<9} {restarts:<8} {self.log or ''}")


HEADER = f"{'service':<14} {'state':<10} {'version':<10} {'address':<26} {'process':<11} " \
         f"{'rss':<9} {'restarts':<8} log"


def up(settings: Settings) -> list[ServiceStatus]:
    """Start whatever is not already answering, create the topics, and fetch Spark's jars."""
    check_free_space(settings.cache_dir)
    check_free_space(settings.state_dir)
    kafka_status, *more_brokers = [_up(settings, service) for service in kafka_services(settings)]
    es_status, *more_nodes = [_up(settings, service) for service in elasticsearch_services(settings)]
    created = kafka.ensure_topics(settings)
    if created:
        print(f"  created topics: {', '.join(created)}", flush=True)
    cluster = [_up(settings, service) for service in spark_cluster_services(settings)]
    if not settings.spark_remote:  # runs start Spark in-process: they only need the jars
        statuses = [kafka_status, *more_brokers, es_status, *more_nodes, *cluster,
                    _spark_status(fetch_spark_jars(settings))]
    else:
        statuses = [kafka_status, *more_brokers, es_status, *more_nodes, *cluster,
                    _up(settings, spark_connect_service(settings))]
    supervisor.ensure_running(settings)
    return statuses + _supervisor_status(settings)


def status(settings: Settings) -> list[ServiceStatus]:
    spark = (_status(settings, spark_connect_service(settings)) if settings.spark_remote
             else _spark_status(None))
    return [*(_status(settings, service) for service in kafka_services(settings)),
            *(_status(settings, service) for service in elasticsearch_services(settings)),
            *(_status(settings, service) for service in spark_cluster_services(settings)), spark,
            *_supervisor_status(settings)]


def down(settings: Settings) -> list[str]:
    """Stop only the processes that `up` started (tracked by pid file); returns their names. The
    supervisor goes first, so it does not start again what is being stopped."""
    stopped = []
    # Workers and brokers by their pid files: `up` may have started more than the settings now say.
    workers = _started(settings, f"{spark_cluster.WORKER_PREFIX}*")
    for name in (supervisor.NAME, spark_connect.NAME, *workers, spark_cluster.MASTER):
        if stop_process(settings.state_dir, name):
            stopped.append(name)
    # A cluster's members together: a broker's controlled shutdown waits for a quorum its stopped
    # peers no longer make.
    for service in (elasticsearch.NAME, kafka.NAME):
        members = _started(settings, service) + _started(settings, f"{service}-[0-9]*")
        with ThreadPoolExecutor(max(len(members), 1)) as pool:
            stopped += [name for name, done in zip(members, pool.map(
                lambda name: stop_process(settings.state_dir, name), members), strict=True) if done]
    supervisor.restarts_file(settings.state_dir).unlink(missing_ok=True)  # counted from `up` on
    return stopped


def _started(settings: Settings, pattern: str) -> list[str]:
    """The services whose pid file's name matches `pattern`."""
    return sorted(path.stem for path in (settings.state_dir / "run").glob(f"{pattern}.json"))


def _up(settings: Settings, service: Service) -> ServiceStatus:
    if not service.is_local:  # never started here: nothing to hold, nothing to write
        return _start_unless_running(settings, service)
    with start_lock(settings.state_dir, service.name):
        return _start_unless_running(settings, service)


def _start_unless_running(settings: Settings, service: Service) -> ServiceStatus:
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


def _status(settings: Settings, service: Service) -> ServiceStatus:
    ours = read_pid_file(settings.state_dir, service.name)
    ours = ours if ours and ours.is_alive() else None
    restarts = supervisor.read_restarts(settings.state_dir).get(service.name, {}).get("count", 0)
    health = service.probe(3)
    if health is None:
        return ServiceStatus(service.name, "unhealthy" if ours else "stopped", service.version,
                             service.address, ours and ours.pid, None, ours and ours.log, restarts)
    if ours is None:
        return ServiceStatus(service.name, "external", service.version_of(health, False),
                             service.address)
    return ServiceStatus(service.name, "running", service.version_of(health, True),
                         service.address, ours.pid, ours.rss_bytes() / 1024**2, ours.log, restarts)


def _supervisor_status(settings: Settings) -> list[ServiceStatus]:
    """The supervisor's row, when this state folder runs services it should watch."""
    process = read_pid_file(settings.state_dir, supervisor.NAME)
    if process is None:
        return []
    alive = process.is_alive()
    return [ServiceStatus(supervisor.NAME, "running" if alive else "stopped", "-",
                          "restarts what dies", process.pid if alive else None,
                          process.own_rss_bytes() / 1024**2 if alive else None, process.log)]


def _refuse_foreign_port(port: int, what: str, variable: str) -> None:
    if port_is_open("127.0.0.1", port):
        raise StackError(
            f"Port {port} on 127.0.0.1 is taken by {port_owner(port)}, which is not {what}. "
            f"Stop that process, or set {variable} to use a different port."
        )


def _spark_status(jars: list[str] | None) -> ServiceStatus:
    detail = f"{len(jars)} jars, in-process" if jars is not None else "in-process (SPARK_MASTER)"
    return ServiceStatus("spark", "library", SPARK_VERSION, detail)
