"""The local Apache Kafka broker: real jars from Maven Central, KRaft single-node mode."""

from __future__ import annotations

import base64
import subprocess
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from clickstream_dagster.clients import kafka_admin, retention_ms
from clickstream_dagster.settings import Settings

from . import maven
from .errors import StackError
from .java import find_java_home
from .process import ServiceProcess, start_process, wait_for
from .versions import KAFKA_SCALA_VERSION, KAFKA_VERSION, LOG4J_VERSION, SLF4J_VERSION

NAME = "kafka"
DLQ_PARTITIONS = 1


@dataclass(frozen=True)
class KafkaHealth:
    cluster_id: str
    brokers: list[str]
    topics: list[str]


def probe(settings: Settings, timeout_s: float = 3) -> KafkaHealth | None:
    """A real Kafka answers ApiVersions and a metadata request; anything else returns None."""
    try:
        metadata = kafka_admin(settings, timeout_s=timeout_s).list_topics(timeout=timeout_s)
    except KafkaException:
        return None
    return KafkaHealth(
        cluster_id=metadata.cluster_id or "",
        brokers=[f"{b.host}:{b.port}" for b in metadata.brokers.values()],
        topics=sorted(t for t in metadata.topics if not t.startswith("__")),
    )


def install(settings: Settings) -> Path:
    """Fetch the broker jars and a log4j2 binding into the cache; a second call downloads nothing."""
    dest = settings.cache_dir / f"kafka-{KAFKA_SCALA_VERSION}-{KAFKA_VERSION}"
    maven.copy_dependencies(
        "kafka-broker",
        [
            f"org.apache.kafka:kafka_{KAFKA_SCALA_VERSION}:{KAFKA_VERSION}",
            # The broker's POM brings slf4j 1.7 and no binding; log through log4j2 instead.
            f"org.slf4j:slf4j-api:{SLF4J_VERSION}",
            f"org.apache.logging.log4j:log4j-slf4j2-impl:{LOG4J_VERSION}",
            f"org.apache.logging.log4j:log4j-core:{LOG4J_VERSION}",
        ],
        dest,
        settings=settings.maven_settings,
    )
    return dest


def start(settings: Settings) -> ServiceProcess:
    """Render the config, format storage on first start, and launch the broker in the background."""
    java_home, _ = find_java_home(settings.java_home)
    jars = install(settings)
    home = settings.state_dir / NAME
    data_dir = home / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = settings.kafka_port
    config = home / "server.properties"
    config.write_text(
        _template("kafka-server.properties").format(
            port=port,
            controller_port=port + 1,
            data_dir=data_dir,
            partitions=settings.topic_partitions,
        )
    )
    log4j = home / "log4j2.properties"
    log4j.write_text(_template("kafka-log4j2.properties"))
    java = [
        str(java_home / "bin" / "java"),
        "-Xms256m",
        f"-Xmx{settings.kafka_heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        f"{jars}/*",
    ]
    log = settings.state_dir / "logs" / "kafka.log"
    if not (data_dir / "meta.properties").exists():
        _format_storage(java, config, log)
    service = start_process(
        NAME,
        [*java, "kafka.Kafka", str(config)],
        state_dir=settings.state_dir,
        log=log,
        marker=str(config),
    )
    wait_for(f"Kafka {KAFKA_VERSION}", lambda: probe(settings, 2), service=service, timeout_s=90)
    return service


def ensure_topics(settings: Settings) -> list[str]:
    """Create the event topic and the dead-letter topic if missing; returns those created."""
    # Dead letters keep the original bytes, personal data included: they expire (the retention
    # job keeps an existing topic's setting in line with CLICKSTREAM_DEAD_LETTER_RETENTION_DAYS).
    return create_topics(settings, {settings.topic: settings.topic_partitions,
                                    settings.dlq_topic: DLQ_PARTITIONS},
                         configs={settings.dlq_topic: {"retention.ms": retention_ms(
                             settings.dead_letter_retention_days)}})


def create_topics(settings: Settings, partitions: dict[str, int],
                  configs: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Create the topics that do not exist yet (idempotent), with their `configs`; returns the
    names created."""
    admin = kafka_admin(settings)  # must outlive its futures
    metadata = admin.list_topics(timeout=10)
    replication = min(3, len(metadata.brokers))
    missing = [NewTopic(name, num_partitions=count, replication_factor=replication,
                        config=(configs or {}).get(name, {}))
               for name, count in partitions.items() if name not in metadata.topics]
    created = []
    for name, future in (admin.create_topics(missing).items() if missing else []):
        try:
            future.result(timeout=30)
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another process won the race
                raise StackError(f"Could not create Kafka topic {name}: {exc}") from exc
    return created


def delete_topics(settings: Settings, names: list[str]) -> None:
    admin = kafka_admin(settings)
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)


def _format_storage(java: list[str], config: Path, log: Path) -> None:
    cluster_id = "-"
    while cluster_id.startswith("-"):  # as Kafka's own ids: a leading dash reads as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise StackError(f"Formatting Kafka storage failed; see {log}.")


def _template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text()
