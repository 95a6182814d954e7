"""Three Kafka brokers on loopback (`CLICKSTREAM_KAFKA_BROKERS=3`), each also a KRaft controller,
with the event topic at 3 replicas and `min.insync.replicas=2`. A broker SIGKILLed in the middle
of a produce, and another in the middle of an ingest, lose nothing: every event is on the topic
once and in the lake once, the partitions it led have new leaders, and the sensors' lag stays
right. The supervisor starts the dead broker again."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from clickstream_dagster.definitions import build_resources
from config.clients import kafka_admin
from sandbox.pipeline import Sandbox
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from spark import lake_layout
from stack import kafka, manager
from stack.process import read_pid_file
from tests.helpers import free_port, services_of_their_own, wait_until

BROKERS = 3


@pytest.fixture(scope="module")
def cluster(stack, tmp_path_factory):
    """Settings for a three-broker cluster of their own, under a supervisor of their own; the
    suite's Elasticsearch and Spark Connect server serve it."""
    root = tmp_path_factory.mktemp("brokers")
    port = free_port(pairs=2 * BROKERS)
    with services_of_their_own(
            stack, root / "state", lake_dir=str(root / "lake"), kafka_brokers=BROKERS,
            kafka_heap="512m",
            kafka_bootstrap_servers=",".join(f"127.0.0.1:{port + 2 * n}" for n in range(BROKERS))
    ) as settings:
        yield settings


@pytest.fixture
def sandbox(cluster):
    box = Sandbox(f"test-brokers-{uuid.uuid4().hex[:8]}", cluster)
    box.reset()
    yield box
    shutil.rmtree(box.settings.lake_dir, ignore_errors=True)


def _partitions(settings) -> dict:
    return kafka_admin(settings).list_topics(settings.topic, timeout=10).topics[settings.topic].partitions


@dataclasses.dataclass(frozen=True)
class Kill:
    broker: int
    led: set[int]  # the partitions it led
    restarts: int  # by the supervisor, before the kill


def _kill_a_leader(settings) -> Kill:
    """SIGKILL the broker that leads partition 0."""
    partitions = _partitions(settings)
    leader = partitions[0].leader
    name = kafka.broker_name(leader)
    restarts = {s.name: s for s in manager.status(settings)}[name].restarts
    os.killpg(read_pid_file(settings.state_dir, name).pid, signal.SIGKILL)
    return Kill(leader, {p for p, meta in partitions.items() if meta.leader == leader}, restarts)


def _leaders_moved_and_broker_returned(settings, kill: Kill) -> None:
    dead, led = kill.broker, kill.led
    def moved() -> bool:
        partitions = _partitions(settings)
        return all(partitions[p].leader not in (dead, -1) for p in led)
    wait_until(moved, 30, f"new leaders for the partitions broker {dead} led")
    replicas = {p: set(meta.replicas) for p, meta in _partitions(settings).items()}
    assert all(len(r) == BROKERS for r in replicas.values())

    def back_in_sync() -> bool:
        status = {s.name: s for s in manager.status(settings)}[kafka.broker_name(dead)]
        in_sync = all(set(meta.isrs) == set(meta.replicas) for meta in _partitions(settings).values())
        return status.state == "running" and status.restarts == kill.restarts + 1 and in_sync
    wait_until(back_in_sync, 120, f"the supervisor to bring broker {dead} back in sync")


def _topic_count(box: Sandbox) -> int:
    kafka_resource = build_resources(box.settings)["kafka"]
    return sum(kafka_resource.end_offsets().values())


def _landed(box: Sandbox, spark) -> tuple[int, int, int]:
    landing = spark.read.format("delta").load(lake_layout.landing(box.settings.lake_dir))
    bad = spark.read.format("delta").load(lake_layout.bad_rows(box.settings.lake_dir))
    return landing.count(), landing.select("event_id").distinct().count(), bad.count()


def test_a_broker_killed_during_a_produce_loses_no_event_and_repeats_none(cluster, sandbox, spark):
    config = GeneratorConfig(events=6_000, seed=371, start=datetime.now(UTC), days=1,
                             duplicate_ratio=0.02, malformed_ratio=0.01)
    produced: list = []
    producer = threading.Thread(target=lambda: produced.append(
        produce(config, sandbox.settings, rate=2_000, progress=False)))
    producer.start()
    time.sleep(1.5)  # about half of it sent
    kill = _kill_a_leader(sandbox.settings)
    assert producer.is_alive(), "the produce ended before the kill"
    producer.join(120)
    summary = produced[0]
    assert summary.failed == 0 and summary.delivered == 6_000, summary.errors
    # The idempotent producer's retries to the new leaders wrote nothing twice.
    assert _topic_count(sandbox) == 6_000
    _leaders_moved_and_broker_returned(sandbox.settings, kill)

    sandbox.ingest(dg.DagsterInstance.ephemeral())
    rows, distinct, bad = _landed(sandbox, spark)
    assert rows == distinct == summary.kinds["valid"] + summary.kinds["late"]
    assert bad == summary.kinds["malformed"] > 0


def test_a_broker_killed_during_an_ingest_loses_nothing_and_the_lag_stays_right(
        cluster, sandbox, spark):
    summary = produce(GeneratorConfig(events=40_000, seed=372, start=datetime.now(UTC), days=1,
                                      duplicate_ratio=0.02, malformed_ratio=0.01),
                      sandbox.settings, workers=1, progress=False)
    assert summary.delivered == _topic_count(sandbox) == 40_000
    failures: list[Exception] = []

    def run_ingest() -> None:
        try:
            sandbox.ingest(dg.DagsterInstance.ephemeral())
        except Exception as exc:  # raised again in the test's own thread
            failures.append(exc)
    ingest = threading.Thread(target=run_ingest)
    ingest.start()
    # The micro-batch's offsets are logged before its read starts.
    first_batch = Path(lake_layout.ingest_checkpoint(sandbox.settings.lake_dir)) / "offsets" / "0"
    wait_until(first_batch.exists, 120, "the ingest's first micro-batch to start")
    kill = _kill_a_leader(sandbox.settings)
    assert ingest.is_alive(), "the ingest ended before the kill"
    ingest.join(300)
    assert not ingest.is_alive() and not failures, failures

    rows, distinct, bad = _landed(sandbox, spark)
    assert rows == distinct == summary.kinds["valid"] + summary.kinds["late"]
    assert bad == summary.kinds["malformed"] > 0
    _leaders_moved_and_broker_returned(sandbox.settings, kill)
    # What the sensors read: the topic's end, and the group's committed offsets at it.
    kafka_resource = build_resources(sandbox.settings)["kafka"]
    end = kafka_resource.end_offsets()
    assert sum(end.values()) == 40_000
    assert kafka_resource.committed_offsets(sorted(end)) == end
