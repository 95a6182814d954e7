"""The Dagster daemon killed in the middle of sensor ticks, then restarted, three times while
traffic arrives: no ingest run is lost, none is doubled, and every event lands exactly once.

A kill can land while the daemon launches a run: that run stays STARTING with no process behind
it. Run monitoring fails it once its start timeout passes (shortened here), and the Kafka sensor's
retry takes over, so the records it was asked for are consumed all the same."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import yaml
from pyspark.sql import functions as F

from clickstream_dagster.definitions import build_resources
from clickstream_dagster.jobs import ingest_job
from clickstream_dagster.serving.indices import SERVED
from config.clients import elasticsearch_client
from config.settings import child_env
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from tests.helpers import remove_indices

ROOT = Path(__file__).resolve().parents[2]
WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
           dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _start_daemon(home: Path, env: dict[str, str], log, log_path: Path) -> subprocess.Popen:
    """A daemon, returned once its sensors tick (so that a kill lands in its work, not its start)."""
    offset = log_path.stat().st_size if log_path.exists() else 0
    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w",
         str(ROOT / "workspace.yaml")],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: b"Checking for new runs for sensor: kafka_ingest_sensor"
              in log_path.read_bytes()[offset:], 120, "the daemon to tick")
    except AssertionError:
        daemon.kill()
        raise
    return daemon


def _ingest_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Every ingest run of the instance, newest first."""
    return [r.dagster_run for r in instance.get_run_records(
        dg.RunsFilter(job_name=ingest_job.name), limit=1_000)]


def _wait(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
        time.sleep(0.2)


def test_a_daemon_killed_mid_tick_loses_no_run_and_doubles_none(stack, spark, fresh_topics,
                                                               tmp_path):
    settings = dataclasses.replace(fresh_topics, lake_dir=str(tmp_path / "lake"))
    prefix = f"test-daemon-{fresh_topics.topic}"
    home = tmp_path / "dagster"
    home.mkdir()
    instance_config = yaml.safe_load((ROOT / "stack/templates/dagster.yaml").read_text())
    instance_config["run_monitoring"].update(start_timeout_seconds=15, poll_interval_seconds=3)
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    # Available-now ingest runs (each ends once the topic is in), a tick every second: a kill
    # at any moment lands in or near a tick, a queued run or a launch.
    env = child_env(DAGSTER_HOME=str(home), CLICKSTREAM_AUTOMATION="on",
                    CLICKSTREAM_TOPIC=settings.topic, CLICKSTREAM_DLQ_TOPIC=settings.dlq_topic,
                    CLICKSTREAM_LAKE_DIR=settings.lake_dir, CLICKSTREAM_ES_INDEX_PREFIX=prefix,
                    CLICKSTREAM_SENSOR_INTERVAL_S="1", CLICKSTREAM_INGEST_STREAM_S="0")
    instance = dg.DagsterInstance.from_config(str(home))
    # Today's traffic: open days are the live path's, so no daily run joins the ingest runs.
    start = datetime.now(UTC) - timedelta(minutes=30)
    produced = []
    log_path = home / "daemon.log"
    log = open(log_path, "ab")  # noqa: SIM115 (closed below)
    daemon = _start_daemon(home, env, log, log_path)

    def traffic(seed: int) -> None:
        produced.append(produce(GeneratorConfig(events=2_000, seed=seed, start=start, days=0.01,
                                                duplicate_ratio=0.02), settings, progress=False))

    def restart() -> subprocess.Popen:
        daemon.kill()
        daemon.wait(30)
        return _start_daemon(home, env, log, log_path)

    try:
        # 1. The moment the sensor has asked for a run: it is queued, or being launched.
        runs = len(_ingest_runs(instance))
        traffic(70)
        _wait(lambda: len(_ingest_runs(instance)) > runs, 120, "the sensor to request a run")
        daemon = restart()
        # 2. While an ingest run works: its process goes on without the daemon, and the restarted
        # sensor must not launch a second ingest beside it.
        traffic(71)
        _wait(lambda: any(r.status == dg.DagsterRunStatus.STARTED for r in _ingest_runs(instance)),
              180, "an ingest run to start")
        daemon = restart()
        # 3. In a tick, with new records on the topic and no run asked for them yet.
        traffic(72)
        daemon = restart()

        # Once the restarted daemon has caught up: the group at the topic's end, nothing waiting.
        kafka = build_resources(settings)["kafka"]

        def caught_up() -> bool:
            end = kafka.end_offsets()
            behind = any(kafka.committed_offsets(list(end)).get(p, 0) < o for p, o in end.items())
            return not behind and not instance.get_runs_count(dg.RunsFilter(
                job_name=ingest_job.name, statuses=WAITING))

        _wait(caught_up, 420, "the ingest to consume the whole topic")
    finally:
        daemon.kill()
        daemon.wait(30)
        log.close()

    runs = _ingest_runs(instance)
    keys = Counter(run.tags.get("dagster/run_key") for run in runs)
    assert all(keys) and max(keys.values()) == 1, f"an ingest run key was launched twice: {keys}"
    # Every run succeeded, or never began: failed by the monitor while its launch was cut short.
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(
        dg.RunsFilter(run_ids=[run.run_id for run in runs]))}
    for run in runs:
        if run.status != dg.DagsterRunStatus.SUCCESS:
            assert run.status == dg.DagsterRunStatus.FAILURE, (run.run_id, run.status)
            assert records[run.run_id].start_time is None, f"run {run.run_id} failed after it began"
    assert any(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    # Never two ingests at once, the orphaned run of kill 2 included.
    spans = sorted((r.start_time, r.end_time) for r in records.values() if r.start_time)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans)), spans
    landed = spark.read.format("delta").load(str(Path(settings.lake_dir) / "landing/clickstream"))
    expected = sum(s.kinds["valid"] + s.kinds["late"] for s in produced)
    counts = landed.agg(F.count("*"), F.count_distinct("event_id")).first()
    assert tuple(counts) == (expected, expected)
    remove_indices(elasticsearch_client(stack), prefix,
                   [spec.with_prefix(prefix).name for spec in SERVED])
