"""The same code on a Spark standalone cluster: `stack up` starts a master and two workers on
loopback from SPARK_MASTER alone, the Connect server is the cluster's driver, and its executors run
in the workers' JVMs. An ingest with duplicates and malformed events, then a daily run, land
exactly what local mode lands from the same topic: every table, row for row, and every index."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import MapType

from clickstream_dagster.serving.indices import SERVED
from config.clients import elasticsearch_client
from sandbox.pipeline import Sandbox
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from spark import lake_layout
from stack import manager, spark_cluster
from tests.helpers import create_topics, delete_topics, free_port, remove_indices

EVENTS = 2_000
DAYS = 1
WORKERS = 2
# Set when the row is written, so no two runs agree on them.
WALL_CLOCK = {"ingested_at", "ingest_date"}


def _run(sandbox: Sandbox, first: str, last: str) -> dict[str, int]:
    """Ingest and the daily run of first..last; the served documents per index family."""
    instance = dg.DagsterInstance.ephemeral()
    sandbox.ingest(instance)
    sandbox.daily(instance, first, last)
    client = elasticsearch_client(sandbox.settings)
    return {spec.name: client.count(index=spec.with_prefix(sandbox.name).alias)["count"]
            for spec in SERVED}


def _tables(lake: str) -> list[str]:
    """Every Delta table under a lake root, as paths relative to it."""
    root = Path(lake)
    return sorted(str(log.parent.relative_to(root)) for log in root.rglob("_delta_log")
                  if not log.parent.name.startswith("_"))


def _comparable(frame):
    """`frame` without its wall-clock columns, and with maps as sorted entries (set operations
    refuse maps)."""
    return frame.select(*(
        F.array_sort(F.map_entries(field.name)).alias(field.name)
        if isinstance(field.dataType, MapType) else field.name
        for field in frame.schema.fields if field.name not in WALL_CLOCK))


@dataclasses.dataclass(frozen=True)
class _Reader(Sandbox):
    """A sandbox with a lake, dead letters and indices of its own that reads another sandbox's
    event topic, so both can process the same events at once."""

    source: str = ""

    @property
    def settings(self):
        return dataclasses.replace(super().settings, topic=self.source)


@pytest.fixture(scope="module")
def lakes(stack, tmp_path_factory):
    """One topic, ingested and processed twice at once: by local mode and by a two-worker
    cluster."""
    name = f"test-cluster-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("cluster")
    local = Sandbox(name, dataclasses.replace(stack, lake_dir=str(root / "local" / "lake")))
    master_port = free_port(pairs=WORKERS + 2)
    cluster = _Reader(f"{name}-on-cluster", dataclasses.replace(
        stack, lake_dir=str(root / "cluster" / "lake"), state_dir=root / "state",
        spark_master=f"spark://127.0.0.1:{master_port}", spark_workers=WORKERS,
        spark_worker_memory="1g", spark_remote=f"sc://127.0.0.1:{free_port()}"), source=name)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=DAYS)
    first, last = start.date().isoformat(), (start + timedelta(days=DAYS - 1)).date().isoformat()
    local.reset()
    create_topics(stack, {cluster.settings.dlq_topic: 1})
    summary = produce(GeneratorConfig(events=EVENTS, seed=37, start=start, days=DAYS,
                                      duplicate_ratio=0.05, late_ratio=0.02, malformed_ratio=0.02),
                      local.settings, workers=1, progress=False)
    try:
        # Local mode runs while the cluster starts and runs: the module's time is the longer one.
        with ThreadPoolExecutor(1, thread_name_prefix="local-mode") as pool:
            local_run = pool.submit(_run, local, first, last)
            statuses = {s.name: s for s in manager.up(cluster.settings)}
            served_cluster = _run(cluster, first, last)
            served_local = local_run.result()
        yield local, cluster, summary, served_local, served_cluster, statuses
    finally:
        manager.down(cluster.settings)
        delete_topics(stack, [local.settings.topic, local.settings.dlq_topic,
                              cluster.settings.dlq_topic])
        client = elasticsearch_client(stack)
        for sandbox in (local, cluster):
            remove_indices(client, sandbox.name,
                           [s.with_prefix(sandbox.name).name for s in SERVED])
        shutil.rmtree(root, ignore_errors=True)


def test_stack_up_starts_a_master_and_its_workers_and_the_server_is_their_driver(lakes):
    _, cluster, _, _, _, statuses = lakes
    names = [spark_cluster.MASTER, *(spark_cluster.worker_name(n) for n in range(1, WORKERS + 1))]
    assert all(statuses[name].state == "running" for name in names), statuses
    health = spark_cluster.probe_master(cluster.settings)
    assert health.cores == WORKERS and set(health.workers.values()) == {"ALIVE"}
    # Each worker ran an executor of the server's application, in a JVM of its own.
    for number in range(1, WORKERS + 1):
        work = cluster.settings.state_dir / "spark-cluster" / spark_cluster.worker_name(number) / "work"
        assert list(work.glob("app-*/*/stderr")), f"worker {number} ran no executor"


def test_the_cluster_lands_and_serves_exactly_what_local_mode_does(lakes, spark):
    local, cluster, summary, served_local, served_cluster, _ = lakes
    tables = _tables(local.settings.lake_dir)
    assert {"landing/clickstream", "landing/bad_rows", "raw/clickstream"} <= set(tables)
    assert _tables(cluster.settings.lake_dir) == tables
    for table in tables:
        both = [spark.read.format("delta").load(f"{sandbox.settings.lake_dir}/{table}")
                for sandbox in (local, cluster)]
        mine, theirs = (_comparable(frame) for frame in both)
        assert mine.count() == theirs.count(), table
        assert mine.exceptAll(theirs).isEmpty() and theirs.exceptAll(mine).isEmpty(), table
    # Every valid event once, every malformed one a dead letter.
    landing = spark.read.format("delta").load(lake_layout.landing(cluster.settings.lake_dir))
    assert landing.count() == landing.select("event_id").distinct().count() == (
        summary.kinds["valid"] + summary.kinds["late"])
    bad = spark.read.format("delta").load(lake_layout.bad_rows(cluster.settings.lake_dir))
    assert bad.count() == summary.kinds["malformed"] > 0
    assert served_cluster == served_local and all(served_local.values()), served_local
    assert landing.where(F.col("event_date").isNull()).isEmpty()
