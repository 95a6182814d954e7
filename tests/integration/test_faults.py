"""Faults with the real services: the broker stopped mid-produce and mid-ingest, Elasticsearch
stopped mid-load and before a run, two ingests at once, a full lake. Each test recovers, then
counts exactly. The broker and Elasticsearch that are stopped are the module's own, started by
`stack up` on settings of their own, so the suite's services stay up for the other tests."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
import time
import uuid
from datetime import date

import dagster as dg
import pyarrow as pa
import pytest
from elasticsearch import ApiError, TransportError
from pyspark.sql import functions as F

from clickstream_dagster.assets.ingest import clickstream_landing
from clickstream_dagster.assets.serving import SERVING_ASSETS
from clickstream_dagster.definitions import build_resources
from clickstream_dagster.resources import ElasticsearchResource
from clickstream_dagster.serving.indices import SERVED, URL_COUNTRY, IndexingError, load_day
from config.clients import elasticsearch_client
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from spark.ingest.batch_log import read_batch_log
from spark.ingest.config import IngestConfig
from spark.ingest.stream import IngestJob
from spark.session import connect, stop_session
from stack import elasticsearch, kafka, manager
from stack.process import read_pid_file
from tests.helpers import free_port, remove_indices, services_of_their_own, topic_of_its_own

# A produce paced over 6 s, so the broker stops with most of it still to come however fast the
# machine generates, and nothing is generated or counted only to keep the produce busy.
EVENTS, RATE = 30_000, 5_000


@pytest.fixture(scope="module")
def own(stack):
    """Settings whose broker and Elasticsearch node are the module's own (the suite's Spark
    Connect server serves them), under a supervisor of their own."""
    # Under the stack's state folder: as root, Elasticsearch's unprivileged user must reach it.
    with services_of_their_own(
            stack, stack.state_dir / f"test-faults-{uuid.uuid4().hex[:8]}",
            kafka_heap="512m", elasticsearch_heap="512m",
            kafka_bootstrap_servers=f"127.0.0.1:{free_port(pairs=2)}",
            elasticsearch_url=f"http://127.0.0.1:{free_port(also=(100,))}") as settings:
        yield settings


@pytest.fixture
def own_topic(own):
    """A topic of its own on the module's broker, deleted afterwards."""
    with topic_of_its_own(own) as name:
        yield name


def _stop_service(own, name: str, sig: signal.Signals) -> None:
    """Signal one of the module's own services and wait until it is gone."""
    service = read_pid_file(own.state_dir, name)
    if service is None or not service.is_alive():
        pytest.fail(f"this test stops the module's own {name}; it found none started by `stack up`")
    os.killpg(service.pid, sig)
    deadline = time.monotonic() + 60
    while service.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not service.is_alive(), f"{name} outlived {sig.name} by 60 s"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_broker_stopped_and_restarted_during_produce_delivers_every_event_once(
        own, spark, own_topic, stop):
    settings = dataclasses.replace(own, topic=own_topic)
    summaries = []
    producer = threading.Thread(target=lambda: summaries.append(
        produce(GeneratorConfig(events=EVENTS, seed=31), settings, rate=RATE, progress=False)))
    producer.start()
    try:
        time.sleep(1.0)  # some batches acknowledged, most still to come
        assert producer.is_alive(), "the produce finished before the broker could be stopped"
        _stop_service(own, kafka.NAME, stop)
        time.sleep(3)  # the producer retries against a broker that is gone
    finally:
        manager.up(own)  # the next tests need the broker back, whatever happened here
    producer.join(timeout=180)
    (summary,) = summaries
    assert (summary.produced, summary.failed, summary.errors) == (EVENTS, 0, [])

    # On the topic: every event, and each exactly once (the idempotent producer's retries after
    # the restart never write a second copy).
    events = (spark.read.format("kafka").option("kafka.bootstrap.servers",
                                                own.kafka_bootstrap_servers)
              .option("subscribe", own_topic).option("startingOffsets", "earliest").load()
              .select(F.get_json_object(F.col("value").cast("string"), "$.event_id").alias("id")))
    counted = events.agg(F.count("*").alias("records"), F.count_distinct("id").alias("ids")).first()
    assert (counted["records"], counted["ids"]) == (EVENTS, EVENTS)


def _ingest_in_a_session_of_its_own(settings, config, outcomes: list,
                                    timeout_s: float | None = None) -> None:
    """One available-now ingest, as another process would run it; its batches or its error are
    appended to `outcomes` (failing clearly is an allowed outcome of these faults)."""
    session = connect(settings.spark_remote, settings.spark_retry_s)
    try:
        outcomes.append(IngestJob(session, config).run(timeout_s=timeout_s))
    except Exception as exc:
        outcomes.append(exc)
    finally:
        stop_session(session)


def _landed(spark, table: str) -> tuple[int, int]:
    """(rows, distinct event ids) of a landing table."""
    rows = spark.read.format("delta").load(table)
    return tuple(rows.agg(F.count("*"), F.count_distinct("event_id")).first())


def test_broker_stopped_during_an_ingest_then_every_event_lands_once(own, spark, tmp_path,
                                                                      own_topic):
    """The broker goes away while an ingest reads it: that ingest waits or fails, and once the
    broker is back the next one lands every event exactly once."""
    settings = dataclasses.replace(own, topic=own_topic, lake_dir=str(tmp_path / "lake"))
    config = IngestConfig.from_settings(settings, max_offsets_per_trigger=5_000)
    events = GeneratorConfig(events=60_000, seed=43)
    assert produce(events, settings, progress=False).failed == 0
    outcome: list[object] = []
    worker = threading.Thread(target=_ingest_in_a_session_of_its_own,
                              args=(own, config, outcome, 120))
    worker.start()
    try:
        time.sleep(4)  # the query is started and into its first micro-batches
        assert worker.is_alive(), "the ingest finished before the broker could be stopped"
        _stop_service(own, kafka.NAME, signal.SIGTERM)
        time.sleep(5)
    finally:
        manager.up(own)
    worker.join(timeout=300)
    assert outcome, "the interrupted ingest neither returned nor failed"
    IngestJob(spark, config).run()
    assert _landed(spark, config.landing) == (events.events, events.events)


def test_two_ingests_on_one_checkpoint_land_every_event_exactly_once(stack, spark, tmp_path,
                                                                     fresh_topic):
    """Two ingests started at once on one lake (a CLI run beside a Dagster run, say): whatever
    the interleaving, one may fail but the landing holds each event once, and the next ingest
    carries on from the checkpoint."""
    settings = dataclasses.replace(stack, topic=fresh_topic, lake_dir=str(tmp_path / "lake"))
    config = IngestConfig.from_settings(settings, max_offsets_per_trigger=10_000)
    first = GeneratorConfig(events=60_000, seed=41)
    assert produce(first, settings, progress=False).failed == 0
    outcomes: list[object] = []
    workers = [threading.Thread(target=_ingest_in_a_session_of_its_own,
                                args=(stack, config, outcomes)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert len(outcomes) == 2
    assert any(isinstance(o, list) for o in outcomes), outcomes  # one ran through

    # The next ingest finishes whatever a failed one left, then takes new events as usual.
    IngestJob(spark, config).run()
    assert _landed(spark, config.landing) == (first.events, first.events)
    second = GeneratorConfig(events=5_000, seed=42)
    assert produce(second, settings, progress=False).failed == 0
    IngestJob(spark, config).run()
    assert _landed(spark, config.landing) == (first.events + second.events,) * 2


def test_elasticsearch_stopped_during_a_load_keeps_the_last_load_served(own):
    """Elasticsearch going away mid-load fails the load; once it is back the day still serves
    its previous load, whole, and the retried load serves exactly its rows."""
    client = elasticsearch_client(own)
    spec = URL_COUNTRY.with_prefix(f"test-faults-{uuid.uuid4().hex[:8]}")
    day = "2026-06-01"
    rows = pa.Table.from_pylist([
        {"event_date": day, "url": f"/p/{i}", "country": "DE", "events": i, "page_views": i,
         "unique_users": 1, "sessions": 1, "avg_time_on_page_s": 1.5} for i in range(200_000)])
    load_day(client, spec, day, rows.slice(0, 1_000), "run-1st0")
    failures = []

    def load() -> None:
        try:
            load_day(client, spec, day, rows, "run-2nd0")
        except (IndexingError, ApiError, TransportError) as exc:
            failures.append(exc)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(2)  # the new index exists and is partly loaded
        assert loader.is_alive(), "the load finished before Elasticsearch could be stopped"
        _stop_service(own, elasticsearch.NAME, signal.SIGTERM)
        loader.join(timeout=300)
    finally:
        manager.up(own)
    assert failures, "a load whose Elasticsearch went away must fail"
    client = elasticsearch_client(own)
    alias = spec.index_for(day)
    client.cluster.health(index=alias, wait_for_status="yellow", timeout="60s")
    assert client.count(index=alias)["count"] == client.count(index=spec.alias)["count"] == 1_000

    report = load_day(client, spec, day, rows, "run-3rd0")
    assert (report.documents, report.replaced) == (200_000, [f"{alias}_run-1st0"])
    assert client.count(index=alias)["count"] == 200_000
    # The interrupted load's index is gone too: only the serving index is left.
    assert list(client.indices.get(index=f"{spec.name}-*")) == [f"{alias}_run-3rd0"]
    remove_indices(client, spec.name, [spec.name])


def test_an_index_load_is_retried_until_elasticsearch_is_back(own, spark, tmp_path):
    """The index asset's retry policy: a run that starts while Elasticsearch is down retries the
    step with backoff and, once Elasticsearch is back, serves exactly the table's rows."""
    settings = dataclasses.replace(own, lake_dir=str(tmp_path / "lake"))
    resources = build_resources(settings)
    prefix = f"test-retry-{uuid.uuid4().hex[:8]}"
    resources["elasticsearch"] = ElasticsearchResource(url=own.elasticsearch_url,
                                                       index_prefix=prefix)
    day = "2026-06-01"
    table = spark.createDataFrame(
        [(date.fromisoformat(day), f"/p/{i}", "DE", i, i, 1, 1, 1.5) for i in range(500)],
        "event_date date, url string, country string, events long, page_views long, "
        "unique_users long, sessions long, avg_time_on_page_s double")
    table.write.format("delta").partitionBy("event_date").save(
        resources["lake"].analytics(URL_COUNTRY.table))
    url_country_index = SERVING_ASSETS[SERVED.index(URL_COUNTRY)]

    _stop_service(own, elasticsearch.NAME, signal.SIGTERM)
    restarter = threading.Thread(target=lambda: (time.sleep(5), manager.up(own)))
    restarter.start()
    try:
        result = dg.materialize([url_country_index], partition_key=day, resources=resources,
                                raise_on_error=False)
    finally:
        restarter.join()
        manager.up(own)
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert result.success and retried
    client = elasticsearch_client(own)
    spec = URL_COUNTRY.with_prefix(prefix)
    assert client.count(index=spec.index_for(day))["count"] == 500
    remove_indices(client, spec.name, [spec.name])


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB file system of its own (tmpfs) for the lake, so that it can fill up."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                   check=True)
    yield mount
    # Lazy: a Spark file handle still open on it must not fail the teardown.
    subprocess.run([*sudo, "umount", "-l", str(mount)], check=True)


def test_a_full_lake_fails_the_ingest_clearly_and_the_next_run_resumes_exactly_once(
        stack, spark, fresh_topics, small_disk):
    settings = dataclasses.replace(fresh_topics, lake_dir=str(small_disk / "lake"))
    resources = build_resources(settings)
    lake = resources["lake"]
    first = produce(GeneratorConfig(events=5_000, seed=51), settings, progress=False)
    assert dg.materialize([clickstream_landing], resources=resources).success
    landed_before = _landed(spark, lake.landing)
    log_before = read_batch_log(spark, lake.root)

    # The disk fills up (another tenant of the volume, say) while new events wait.
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as out, contextlib.suppress(OSError):  # ENOSPC
        while out.write(b"\0" * (1 << 16)):
            pass
    second = produce(GeneratorConfig(events=5_000, seed=52), settings, progress=False)
    failed = dg.materialize([clickstream_landing], resources=resources, raise_on_error=False)
    assert not failed.success
    message = str(failed.get_step_failure_events()[0].event_specific_data.error)
    assert "is full" in message and lake.root in message, message
    # Nothing of the failed run is published: no landing commit, no batch record.
    assert _landed(spark, lake.landing) == landed_before
    assert read_batch_log(spark, lake.root) == log_before

    filler.unlink()  # space again: the next run resumes from the checkpoint
    assert dg.materialize([clickstream_landing], resources=resources).success
    expected = sum(s.kinds["valid"] + s.kinds["late"] for s in (first, second))
    assert _landed(spark, lake.landing) == (expected, expected)
    log = read_batch_log(spark, lake.root)
    assert sorted(b["batch_id"] for b in log) == list(range(len(log)))
    assert sum(b["input_rows"] for b in log) == first.produced + second.produced
