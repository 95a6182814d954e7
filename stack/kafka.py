"""The local Apache Kafka brokers: real jars from Maven Central, in KRaft mode, each broker also a
controller. One by default; `CLICKSTREAM_KAFKA_BROKERS` of them on consecutive port pairs."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from config.clients import kafka_admin, retention_ms
from config.kafka import KafkaSecurity
from config.settings import Settings

from . import maven
from .certificates import self_signed_certificates
from .errors import StackError
from .java import find_java_home
from .process import Members, ServiceProcess, start_process, wait_for
from .versions import KAFKA_SCALA_VERSION, KAFKA_VERSION, LOG4J_VERSION, SLF4J_VERSION

NAME = "kafka"
SECURED_NAME = "kafka-secured"
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


def broker_name(number: int) -> str:
    return NAME if number == 1 else f"{NAME}-{number}"


def broker_port(settings: Settings, number: int) -> int:
    """Broker `number`'s client port; its controller listens on the next one."""
    return settings.kafka_port + 2 * (number - 1)


def one_broker(settings: Settings, number: int) -> Settings:
    """`settings` pointing at broker `number` alone, to ask it whether it is up."""
    return replace(settings, kafka_bootstrap_servers=f"127.0.0.1:{broker_port(settings, number)}")


def broker_ports(settings: Settings, number: int) -> tuple[tuple[int, str], ...]:
    """Broker `number`'s ports, each with what must listen there."""
    port = broker_port(settings, number)
    return (port, "Kafka"), (port + 1, "the Kafka controller")


def brokers(settings: Settings) -> Members:
    # With several, no broker answers before a majority of the controllers is up.
    return Members(f"Kafka {KAFKA_VERSION} broker", settings.kafka_brokers, broker_name,
                   lambda number: _launch_cluster_broker(settings, number),
                   lambda number: probe(one_broker(settings, number), 2), timeout_s=90)


def start(settings: Settings) -> list[ServiceProcess]:
    """Start every local broker that does not run."""
    return brokers(settings).start_all(settings.state_dir)


def _launch_cluster_broker(settings: Settings, number: int) -> ServiceProcess:
    count = settings.kafka_brokers
    voters = ",".join(f"{n}@127.0.0.1:{broker_port(settings, n) + 1}" for n in range(1, count + 1))
    return _launch_broker(settings, broker_name(number), settings.state_dir / broker_name(number),
                          broker_port(settings, number), node_id=number, voters=voters,
                          replicas=min(3, count), min_isr=min(2, count),
                          cluster_id=_cluster_id(settings))


def _cluster_id(settings: Settings) -> str:
    """The id every broker of the local cluster formats its storage with: the one a broker already
    has, else a new one."""
    for number in range(1, settings.kafka_brokers + 1):
        meta = settings.state_dir / broker_name(number) / "data" / "meta.properties"
        if meta.exists():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.removeprefix("cluster.id=")
    path = settings.state_dir / "run" / "kafka-cluster.id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_new_cluster_id())
    return path.read_text()


@dataclass(frozen=True)
class SecuredBroker:
    """A local broker that asks for what a production cluster does: SASL (SCRAM) over TLS."""

    settings: Settings  # its address and a client's SASL_SSL settings
    service: ServiceProcess


def start_secured(settings: Settings, port: int, username: str, password: str) -> SecuredBroker:
    """A second local broker, with its own storage and CA, whose client listener is SASL_SSL with
    SCRAM-SHA-512 (the broker talks to itself over loopback plaintext). For testing every client's
    security settings; stop it with `stop_process(settings.state_dir, SECURED_NAME)`."""
    home = settings.state_dir / SECURED_NAME
    shutil.rmtree(home, ignore_errors=True)
    certs = home / "certs"
    self_signed_certificates(certs)
    secured = replace(settings, kafka_bootstrap_servers=f"127.0.0.1:{port}").with_kafka_security(
        KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username=username,
                      password=password, ca_location=str(certs / "ca.crt")))
    listeners = {
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1},"
                     f"INTERNAL://127.0.0.1:{port + 2}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{port + 2}",
        "inter.broker.listener.name": "INTERNAL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certs / "node.pem"),
    }
    service = _launch_broker(settings, SECURED_NAME, home, port, overrides=listeners,
                             scram=f"SCRAM-SHA-512=[name={username},password={password}]")
    wait_for(f"Kafka {KAFKA_VERSION}", lambda: probe(secured, 2), service=service, timeout_s=90)
    return SecuredBroker(secured, service)


def _launch_broker(settings: Settings, name: str, home: Path, port: int, *, node_id: int = 1,
                   voters: str | None = None, replicas: int = 1, min_isr: int = 1,
                   cluster_id: str | None = None, overrides: dict[str, str] | None = None,
                   scram: str | None = None) -> ServiceProcess:
    """Render the config, format storage on first start, and launch the broker in the background."""
    java_home, _ = find_java_home(settings.java_home)
    jars = install(settings)
    data_dir = home / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = home / "server.properties"
    rendered = _template("kafka-server.properties").format(
        node_id=node_id,
        voters=voters or f"{node_id}@127.0.0.1:{port + 1}",
        port=port,
        controller_port=port + 1,
        data_dir=data_dir,
        partitions=settings.topic_partitions,
        replicas=replicas,
        min_isr=min_isr,
    )
    # A later key wins in a properties file.
    config.write_text(rendered + "".join(f"{k}={v}\n" for k, v in (overrides or {}).items()))
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
    log = settings.state_dir / "logs" / f"{name}.log"
    if not (data_dir / "meta.properties").exists():
        _format_storage(java, config, log, cluster_id or _new_cluster_id(), scram)
    return start_process(
        name,
        [*java, "kafka.Kafka", str(config)],
        state_dir=settings.state_dir,
        log=log,
        marker=str(config),
    )


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
    _await_leaders(admin, created)
    return created


def _await_leaders(admin, names: list[str], timeout_s: float = 30) -> None:
    # The controller answers before every broker's metadata shows the topic: a client that
    # looked it up at once was told it did not exist.
    deadline = time.monotonic() + timeout_s
    while names:
        topics = admin.list_topics(timeout=10).topics
        if all(name in topics and not topics[name].error and topics[name].partitions
               and all(p.leader >= 0 for p in topics[name].partitions.values()) for name in names):
            return
        if time.monotonic() > deadline:
            raise StackError(f"Kafka created {', '.join(names)}, but its metadata did not show "
                             f"a leader for every partition within {timeout_s:.0f} s; see its log")
        time.sleep(0.1)


def delete_topics(settings: Settings, names: list[str]) -> None:
    admin = kafka_admin(settings)
    for future in admin.delete_topics(names).values():
        future.result(timeout=30)


def _new_cluster_id() -> str:
    cluster_id = "-"
    while cluster_id.startswith("-"):  # as Kafka's own ids: a leading dash reads as an option
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id


def _format_storage(java: list[str], config: Path, log: Path, cluster_id: str,
                    scram: str | None = None) -> None:
    """Format the broker's storage; `scram` adds a SCRAM credential (`MECHANISM=[name=...,
    password=...]`), which KRaft can only take before the first start."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(config),
             *(["--add-scram", scram] if scram else [])],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise StackError(f"Formatting Kafka storage failed; see {log}.")


def _template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text()
