"""A Spark Connect server killed under a streaming ingest: the ingest fails naming the server, the
supervisor starts the server again, and the next ingest lands every event once. And a server whose
foreachBatch worker starts too late for it: the ingest starts its query again."""

from __future__ import annotations

import dataclasses
import sys
import threading
from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F

from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from spark.ingest.batch_log import read_batch_log
from spark.ingest.config import CONTINUOUS, IngestConfig
from spark.ingest.stream import IngestJob
from spark.session import (
    SparkServerUnavailable,
    connect,
    naming_the_server,
    stop_session,
    within,
)
from tests.helpers import free_port, kill_spark_server, wait_until

EVENTS = GeneratorConfig(events=12_000, seed=61, start=datetime(2026, 3, 1, tzinfo=UTC),
                         duplicate_ratio=0.02, malformed_ratio=0.01)

# The server waits a fixed 10 s for its foreachBatch worker to connect back.
LATE_S = 12


@pytest.mark.timeout(600)
def test_a_streaming_ingest_whose_server_dies_fails_naming_it_and_the_next_lands_every_event_once(
        own_server):
    own = own_server
    summary = produce(EVENTS, own, progress=False)
    session = connect(own.spark_remote, own.spark_retry_s)
    ingest = IngestJob(session, IngestConfig.from_settings(own, mode=CONTINUOUS,
                                                           processing_time="2 seconds",
                                                           max_offsets_per_trigger=4_000))
    landed_some, outcome = threading.Event(), []

    def stream() -> None:
        try:
            with naming_the_server(own.spark_remote, own.spark_retry_s):
                ingest.stream(seconds=300, idle_s=120, after_batches=lambda _: landed_some.set())
            outcome.append("returned")
        except BaseException as exc:  # noqa: BLE001 (what the stream ended with is the result)
            outcome.append(exc)

    streaming = threading.Thread(target=stream)
    streaming.start()
    assert landed_some.wait(240), "no micro-batch landed before the kill"
    restarted = kill_spark_server(own)
    streaming.join(180)
    assert not streaming.is_alive(), "the streaming ingest outlived its server by 3 minutes"
    (error,) = outcome
    assert isinstance(error, SparkServerUnavailable) and own.spark_remote in str(error), error

    wait_until(restarted, 180, "the supervisor to start the server again")

    again = connect(own.spark_remote, own.spark_retry_s)
    try:
        IngestJob(again, IngestConfig.from_settings(own, max_offsets_per_trigger=8_000)).run()
        landed = again.read.format("delta").load(IngestConfig.from_settings(own).landing)
        counts = landed.agg(F.count("*").alias("rows"), F.count_distinct("event_id").alias("ids"))
        expected = summary.kinds["valid"] + summary.kinds["late"]
        assert tuple(counts.first()) == (expected, expected)
        log = read_batch_log(again, own.lake_dir)
        assert sorted(b["batch_id"] for b in log) == list(range(len(log)))  # each batch once
        assert sum(b["input_rows"] for b in log) == EVENTS.events
        assert sum(b["dead_letters"] for b in log) == summary.kinds["malformed"]
    finally:
        stop_session(again)
        within(10, lambda: stop_session(session))  # its server is gone


@pytest.mark.timeout(300)
def test_a_foreach_batch_worker_that_connects_back_late_only_delays_the_ingest(
        fresh_topics, tmp_path, monkeypatch, caplog):
    from stack import manager, spark_connect

    # The server's interpreter for foreachBatch: late once, as a loaded driver's can be.
    late_once = tmp_path / "late-once"
    python = tmp_path / "late-python"
    python.write_text(f"""#!/bin/sh
if [ "$2" = pyspark.sql.connect.streaming.worker.foreach_batch_worker ] && mkdir {late_once} 2>/dev/null
then sleep {LATE_S}
fi
exec {sys.executable} "$@"
""")
    python.chmod(0o755)
    own = dataclasses.replace(fresh_topics, state_dir=tmp_path / "state",
                              lake_dir=str(tmp_path / "lake"),
                              spark_remote=f"sc://127.0.0.1:{free_port()}")
    session = None
    try:
        with monkeypatch.context() as server_side:
            server_side.setattr(sys, "executable", str(python))
            spark_connect.start(own)
        summary = produce(GeneratorConfig(events=2_000, seed=62,
                                          start=datetime(2026, 3, 1, tzinfo=UTC)), own,
                          progress=False)
        session = connect(own.spark_remote, own.spark_retry_s)
        IngestJob(session, IngestConfig.from_settings(own)).run()
        assert late_once.exists() and "did not connect back in time" in caplog.text, (
            "the worker was never late: the test tested nothing")
        landed = session.read.format("delta").load(IngestConfig.from_settings(own).landing)
        counts = landed.agg(F.count("*").alias("rows"), F.count_distinct("event_id").alias("ids"))
        assert tuple(counts.first()) == (summary.kinds["valid"],) * 2
    finally:
        if session is not None:
            stop_session(session)
        manager.down(own)
