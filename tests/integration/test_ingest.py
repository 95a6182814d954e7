"""The streaming ingest on real Kafka and Spark: nothing lost, nothing duplicated, even after a crash."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pyspark.sql import functions as F

from config.settings import child_env
from simulator.producer import produce
from simulator.timeline import LATE, VALID, GeneratorConfig, stream
from spark.delta_lake import (
    LANDING_STATISTICS,
    partition_columns,
    set_missing_properties,
    table_properties,
)
from spark.ingest.batch_log import read_batch_log
from spark.ingest.config import IngestConfig
from spark.ingest.stream import IngestJob
from spark.session import connect, stop_session
from tests.helpers import consume_all, create_topics, delete_topics, isolated_topics

FAULTY = GeneratorConfig(
    events=30_000, seed=21, start=datetime(2026, 2, 10, tzinfo=UTC), days=3,
    duplicate_ratio=0.03, late_ratio=0.03, max_lateness_s=6 * 3600, malformed_ratio=0.03,
)


MIN_DELTAS_FOR_SNAPSHOT = "spark.sql.streaming.stateStore.minDeltasForSnapshot"
# Oversized records are over 16 KB: each task keeps the bytes of at most two of them, and holds
# the rest back for the writer to read back from the topic, so both paths run here.
KEPT_PER_TASK = 40_000


def _expected(config: GeneratorConfig):
    messages = list(stream(config))
    unique = [m for m in messages if m.kind in (VALID, LATE)]
    return messages, unique


def _ingest(spark, settings, lake: Path, **overrides):
    config = IngestConfig.from_settings(dataclasses.replace(settings, lake_dir=str(lake)),
                                        max_offsets_per_trigger=8_000, **overrides)
    return config, IngestJob(spark, config).run()


@pytest.fixture(scope="module")
def faulty_run(stack, spark, tmp_path_factory):
    settings = isolated_topics(stack)
    create_topics(stack, {settings.topic: 6, settings.dlq_topic: 1})
    summary = produce(FAULTY, settings, workers=2, progress=False)
    lake = tmp_path_factory.mktemp("lake")
    # A state snapshot after every micro-batch, not every tenth, so the few batches here leave
    # some for the server's state maintenance to upload (see the last test).
    spark.conf.set(MIN_DELTAS_FOR_SNAPSHOT, "1")
    try:
        config = IngestConfig.from_settings(dataclasses.replace(settings, lake_dir=str(lake)),
                                            max_offsets_per_trigger=8_000,
                                            oversized_bytes_kept=KEPT_PER_TASK)
        job = IngestJob(spark, config)
        batches = job.run()
    finally:
        spark.conf.unset(MIN_DELTAS_FOR_SNAPSHOT)
    # What each micro-batch's dedup did, as the query reported it.
    dedups = [(p.numInputRows, p.stateOperators[0].customMetrics)
              for p in job.query.recentProgress if p.numInputRows]
    yield settings, summary, config, batches, lake, dedups
    delete_topics(stack, [settings.topic, settings.dlq_topic])


def test_every_message_is_accounted_for_exactly(spark, faulty_run):
    settings, summary, config, batches, _, _ = faulty_run
    _, unique = _expected(FAULTY)
    lake = spark.read.format("delta").load(config.landing)
    landed = lake.count()
    assert landed == len(unique) == summary.kinds["valid"] + summary.kinds["late"]
    assert lake.select("event_id").distinct().count() == landed
    dead = sum(b.dead_letters for b in batches)
    removed = sum(b.duplicates_removed for b in batches)
    assert dead == summary.kinds["malformed"]
    assert removed == summary.kinds["duplicate"]
    assert landed + removed + dead == summary.produced == FAULTY.events
    assert sum(b.input_rows for b in batches) == FAULTY.events
    assert len(batches) >= 4  # several micro-batches, so dedup held state across batches


def test_every_dead_letter_carries_its_reason_in_the_topic_and_the_table(spark, faulty_run):
    settings, summary, config, batches, _, _ = faulty_run
    reasons = Counter()
    for batch in batches:
        reasons.update(batch.dead_letters_per_reason)
    assert reasons == summary.malformed_reasons  # per reason, exactly what was injected

    messages = consume_all(settings.kafka_bootstrap_servers, settings.dlq_topic, sum(reasons.values()))
    assert len(messages) == sum(reasons.values())
    sources = set()
    for msg in messages:
        headers = {k: v.decode() for k, v in msg.headers()}
        assert headers["error"].split(":")[0] in reasons
        assert headers["source.topic"] == settings.topic
        sources.add((headers["source.partition"], headers["source.offset"]))
    assert len(sources) == len(messages)  # each points at its own source record

    bad_rows = spark.read.format("delta").load(config.bad_rows)
    assert bad_rows.count() == sum(reasons.values())
    assert bad_rows.where("error is null or raw is null").count() == 0


def test_each_micro_batch_runs_its_dedup_once_whatever_its_dead_letters(faulty_run):
    """The writer reads the cached micro-batch several times, the held-back dead letters' read-back
    included; a read that missed the cache would run the batch's dedup again."""
    _, _, _, batches, _, dedups = faulty_run
    oversized = sum(b.dead_letters_per_reason.get("oversized", 0) for b in batches)
    tasks = 6  # the topic's partitions
    assert oversized > 2 * tasks * len(batches), "no batch held an oversized record back"
    assert len(dedups) == len(batches)
    for input_rows, metrics in dedups:
        assert metrics["rocksdbGetCount"] == input_rows


def test_days_land_in_their_own_partitions_and_late_events_in_their_event_day(spark, faulty_run):
    _, _, config, _, _, _ = faulty_run
    _, unique = _expected(FAULTY)
    lake = spark.read.format("delta").load(config.landing)
    per_day = {str(r["event_date"]): r["count"] for r in lake.groupBy("event_date").count().collect()}
    expected = Counter(datetime.fromtimestamp(m.event_ts_ms / 1000, UTC).date().isoformat()
                       for m in unique)
    assert per_day == dict(expected) and len(per_day) == 3
    assert lake.where("to_date(event_ts) != event_date").count() == 0

    def day(ms):
        return datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()

    crossed = {m.value for m in unique if m.kind == LATE and day(m.event_ts_ms) != day(m.delivery_ms)}
    assert crossed, "the fixture must deliver some events after their day ended"
    late_ids = [orjson.loads(v)["event_id"] for v in crossed]
    found = lake.where(lake.event_id.isin(late_ids)).select("event_date", "event_ts").collect()
    assert len(found) == len(crossed)
    assert all(str(r["event_date"]) == r["event_ts"].date().isoformat() for r in found)


def test_a_landing_partitioned_by_hour_keeps_its_layout(spark, faulty_run, tmp_path):
    """A landing created by an older version is partitioned by event_hour too: batches keep
    writing it that way, with the event's UTC hour."""
    settings, _, config, batches, _, _ = faulty_run
    # The whole topic in one micro-batch: the layout is the point, not the batching.
    older = IngestConfig.from_settings(dataclasses.replace(settings, lake_dir=str(tmp_path)),
                                       max_offsets_per_trigger=FAULTY.events)
    (spark.read.format("delta").load(config.landing).limit(100)
     .withColumn("event_hour", F.date_format("event_ts", "HH"))
     .write.format("delta").partitionBy("event_date", "event_hour").save(older.landing))

    again = IngestJob(spark, older).run()

    assert partition_columns(spark, older.landing) == ["event_date", "event_hour"]
    assert sum(b.landing_rows for b in again) == sum(b.landing_rows for b in batches)
    landed = spark.read.format("delta").load(older.landing)
    assert landed.count() == 100 + sum(b.landing_rows for b in batches)
    assert landed.where(F.col("event_hour") != F.date_format("event_ts", "HH")).count() == 0


def test_the_landing_keeps_statistics_only_on_its_times_and_a_change_feed(spark, faulty_run):
    _, _, config, _, _, _ = faulty_run
    assert partition_columns(spark, config.landing) == ["event_date"]
    properties = table_properties(spark, config.landing)
    assert properties["delta.dataSkippingStatsColumns"] == "event_ts,ingested_at"
    assert properties["delta.enableChangeDataFeed"] == "true"
    added = [json.loads(line)["add"] for log in Path(config.landing, "_delta_log").glob("*.json")
             for line in log.read_text().splitlines() if '"add"' in line]
    assert added and all(set(json.loads(a["stats"])["minValues"]) == {"event_ts", "ingested_at"}
                         for a in added)
    # A lake created before: the next run sets what it lacks, and nothing when nothing is missing.
    spark.sql(f"ALTER TABLE delta.`{config.landing}` UNSET TBLPROPERTIES "
              "('delta.dataSkippingStatsColumns')")
    assert set_missing_properties(spark, config.landing, LANDING_STATISTICS) == \
        ["delta.dataSkippingStatsColumns"]
    assert set_missing_properties(spark, config.landing, LANDING_STATISTICS) == []


def test_a_restart_with_nothing_new_writes_nothing(spark, faulty_run):
    settings, _, config, _, lake, _ = faulty_run
    before = sorted(p for p in Path(config.landing).rglob("*.parquet"))
    _, batches = _ingest(spark, settings, lake)
    assert sum(b.input_rows for b in batches) == 0
    assert sum(b.landing_rows + b.dead_letters for b in batches) == 0
    assert sorted(p for p in Path(config.landing).rglob("*.parquet")) == before


def _committed(table: Path, batch_id: int) -> bool:
    """True once the table's Delta log holds the idempotent-write transaction of `batch_id`."""
    for entry in sorted((table / "_delta_log").glob("*.json"))[-3:]:
        try:
            actions = [json.loads(line) for line in entry.read_text().splitlines() if line]
        except (OSError, ValueError):  # being written right now
            continue
        if any(a.get("txn", {}).get("version") == batch_id for a in actions):
            return True
    return False


def _written_uncommitted(landing: Path, batch_id: int, before: set[Path]) -> bool:
    """True once batch `batch_id` has written landing files that no commit holds yet."""
    return bool(set(landing.rglob("*.parquet")) - before) and not _committed(landing, batch_id)


# Where the ingest dies in its third micro-batch (batch 2), as (name, whether it is time yet).
# Each point leaves a different part of the batch behind: files with no commit, a landing commit
# with no batch-log record, or both commits with no checkpoint commit.
KILL_POINTS = {
    "after the write, before the landing commit":
        lambda lake, before: _written_uncommitted(lake / "landing/clickstream", 2, before),
    "after the landing commit, before the batch log":
        lambda lake, before: _committed(lake / "landing/clickstream", 2),
    "after the batch log, before the checkpoint commit":
        lambda lake, before: _committed(lake / "_ingest_log", 2),
}


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_sigkill_mid_batch_then_restart_lands_every_event_exactly_once(stack, spark, fresh_topics,
                                                                       tmp_path, kill_point):
    # Four micro-batches of 2,000: two to land before the kill, the killed one, one after it.
    config = GeneratorConfig(events=8_000, seed=33, start=datetime(2026, 2, 20, tzinfo=UTC),
                             duplicate_ratio=0.02, malformed_ratio=0.01)
    summary = produce(config, fresh_topics, progress=False)
    lake = tmp_path / "lake"
    # The ingest runs its own in-process Spark here, so that SIGKILL takes down the very process
    # that writes the lake and the checkpoint, as a crash of the Spark server would. Its scratch
    # folders go under tmp_path, since a killed JVM leaves them behind.
    env = child_env(CLICKSTREAM_TOPIC=fresh_topics.topic, CLICKSTREAM_DLQ_TOPIC=fresh_topics.dlq_topic,
                    CLICKSTREAM_LAKE_DIR=str(lake), CLICKSTREAM_SPARK_REMOTE="none",
                    SPARK_MASTER="local[2]", SPARK_DRIVER_MEMORY="2g",
                    SPARK_LOCAL_DIRS=str(tmp_path / "spark-scratch"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "ingest", "--max-offsets-per-trigger",
         "2000"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Wait for batch 1's landing commit, note the files it left, then kill at the chosen point of
    # batch 2: the replay after the restart must land those rows once, and log the batch once.
    landing = lake / "landing/clickstream"
    deadline = time.monotonic() + 240
    while not _committed(landing, 1) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    before = set(landing.rglob("*.parquet"))
    due = KILL_POINTS[kill_point]
    while not due(lake, before) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert due(lake, before), f"the ingest never got {kill_point} of batch 2"
    assert not (lake / "_checkpoints/ingest/commits/2").exists(), "killed too late to test a crash"

    _, batches = _ingest(spark, fresh_topics, lake)
    assert batches and batches[0].batch_id == 2  # the interrupted batch ran again
    landed = spark.read.format("delta").load(str(landing))
    expected = summary.kinds["valid"] + summary.kinds["late"]
    assert landed.count() == expected
    assert landed.select("event_id").distinct().count() == expected
    log = read_batch_log(spark, str(lake))
    assert sorted(b["batch_id"] for b in log) == list(range(len(log)))  # each batch logged once
    assert sum(b["input_rows"] for b in log) == config.events
    assert sum(b["dead_letters"] for b in log) == summary.kinds["malformed"]
    bad_rows = spark.read.format("delta").load(str(lake / "landing/bad_rows"))
    assert bad_rows.count() == summary.kinds["malformed"]


def test_days_committed_by_a_run_that_never_reported_are_recomputed(stack, tmp_path):
    """An ingest that commits micro-batches and then dies reports nothing; the next landing
    materialization finds its batches in the lake's batch log and names their days."""
    import dagster as dg

    from clickstream_dagster.assets.ingest import clickstream_landing
    from clickstream_dagster.definitions import build_resources

    settings = dataclasses.replace(isolated_topics(stack), lake_dir=str(tmp_path / "lake"))
    create_topics(stack, {settings.topic: 2, settings.dlq_topic: 1})
    resources, instance = build_resources(settings), dg.DagsterInstance.ephemeral()

    def landing_metadata() -> dict:
        result = dg.materialize([clickstream_landing], resources=resources, instance=instance)
        return {k: v.value for k, v in
                result.asset_materializations_for_node("clickstream_landing")[0].metadata.items()}

    def one_day(day: int) -> GeneratorConfig:
        return GeneratorConfig(events=400, seed=day, start=datetime(2026, 8, day, tzinfo=UTC))

    try:
        produce(one_day(1), settings, progress=False)
        assert landing_metadata()["changed_partitions"] == ["2026-08-01"]
        # A run that commits and is gone before it reports: the ingest outside any materialization.
        produce(one_day(2), settings, progress=False)
        session = connect(settings.spark_remote, settings.spark_retry_s)
        try:
            IngestJob(session, IngestConfig.from_settings(settings)).run()
        finally:
            stop_session(session)
        recovered = landing_metadata()
        assert recovered["records_consumed"] == 0
        assert recovered["changed_partitions"] == recovered["recovered_partitions"] == ["2026-08-02"]
        assert recovered["recovered_batches"] >= 1
        assert landing_metadata()["changed_partitions"] == []  # reported once, not again
    finally:
        delete_topics(stack, [settings.topic, settings.dlq_topic])


def test_the_dedup_state_is_snapshotted_so_a_restart_replays_few_changelogs(faulty_run):
    # Last in the module: the server's state maintenance, which runs once a minute, has had its turn.
    _, _, config, _, _, _ = faulty_run
    partitions = sorted(Path(config.checkpoint, "state", "0").glob("[0-9]*"))
    assert len(partitions) == config.state_partitions
    deadline = time.monotonic() + 150
    missing = partitions
    while missing and time.monotonic() < deadline:
        missing = [p for p in partitions if not list(p.glob("*.zip"))]
        time.sleep(1)
    # Without a snapshot, changelogs are never cleaned and every restart replays all of them.
    assert not missing, f"no RocksDB snapshot was uploaded for {missing}: see the server's log"


NEAR_LIMIT = 1_500  # records of 900 KB, in a row on one partition: 1.35 GB in one micro-batch


@pytest.mark.serial  # 1.35 GB through the one server: alone, so that its survival is its own
@pytest.mark.timeout(600)
def test_near_limit_records_are_dead_lettered_whole_and_the_server_survives(stack, spark,
                                                                            fresh_topics, tmp_path):
    # The micro-batch's cache once held these records' bytes, and ran the server's default heap
    # out: OutOfMemoryError, and the server was gone.
    from confluent_kafka import Producer

    from stack.process import read_pid_file

    server = read_pid_file(stack.state_dir, "spark-connect")
    producer = Producer(fresh_topics.kafka_client_config(**{"linger.ms": "50"}))
    originals = {}
    for n in range(NEAR_LIMIT):
        originals[n] = orjson.dumps({"event_id": f"near-limit-{n}", "padding": "x" * 900_000})
        producer.produce(fresh_topics.topic, originals[n], key=b"k%d" % n, partition=0)
        producer.poll(0)
    valid = GeneratorConfig(events=2_000, seed=5, start=datetime(2026, 2, 10, tzinfo=UTC), days=1)
    assert producer.flush(60) == 0
    summary = produce(valid, fresh_topics, workers=1, progress=False)

    config, batches = _ingest(spark, fresh_topics, tmp_path)

    assert sum(b.landing_rows for b in batches) == summary.kinds["valid"]
    assert sum(b.dead_letters for b in batches) == NEAR_LIMIT
    messages = consume_all(fresh_topics.kafka_bootstrap_servers, fresh_topics.dlq_topic, NEAR_LIMIT,
                           timeout_s=120)
    assert len(messages) == NEAR_LIMIT
    for message in messages:  # whole: the bytes and key as sent, with the reason
        n = int(message.key()[1:])
        assert message.value() == originals[n]
        assert dict(message.headers())["error"].startswith(b"oversized: more than")
    bad_rows = spark.read.format("delta").load(config.bad_rows)
    assert bad_rows.where("kafka_key is null").count() == 0
    assert bad_rows.selectExpr("count(*) rows", "sum(length(raw)) bytes").first() == \
        (NEAR_LIMIT, sum(map(len, originals.values())))
    if server is not None:  # the stack's own server: the same process, still answering
        assert read_pid_file(stack.state_dir, "spark-connect").pid == server.pid
    assert spark.range(3).count() == 3
