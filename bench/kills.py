"""`clickstream bench live --kill TARGET`: SIGKILL one part of the live path mid-run, then measure
how it came back: when Elasticsearch was again within reach of the traffic, which runs failed and
what their alerts said, what the supervisor restarted, and whether every record landed once."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

import dagster as dg

from clickstream_dagster.sensors import step_errors
from config.settings import Settings
from spark.ingest.config import IngestConfig
from stack import elasticsearch, kafka, spark_connect, supervisor
from stack.process import descendants, read_pid_file

INGEST_RUN = "ingest-run"
TARGETS = (spark_connect.NAME, kafka.NAME, elasticsearch.NAME, INGEST_RUN)
# Recovered: probes sent after the kill reach Elasticsearch within this many seconds again.
WITHIN_S = 30


@dataclass
class Kill:
    target: str
    after_s: float
    at: float | None = None  # time.time() of the kill
    pid: int | None = None
    restarts_before: dict = field(default_factory=dict)  # the supervisor's counts at the kill

    def due(self, began: float) -> bool:
        return self.at is None and time.time() >= began + self.after_s

    def fire(self, settings: Settings, instance: dg.DagsterInstance, dagster_pid: int) -> str:
        """SIGKILL the target (a service with its process group, a run's process alone); returns
        what was killed."""
        if self.target == INGEST_RUN:
            self.pid = _ingest_run_process(instance, dagster_pid)
        else:
            service = read_pid_file(settings.state_dir, self.target)
            if service is None or not service.is_alive():
                raise RuntimeError(f"{self.target} was not started by this stack: nothing to kill")
            self.pid = service.pid
        self.restarts_before = supervisor.read_restarts(settings.state_dir)
        self.at = time.time()
        if self.target == INGEST_RUN:  # it shares dagster dev's process group: it alone
            os.kill(self.pid, signal.SIGKILL)
        else:  # a service leads a group of its own: with its children (Spark's Python workers)
            os.killpg(self.pid, signal.SIGKILL)
        return f"{self.target} (pid {self.pid})"


def _ingest_run_process(instance: dg.DagsterInstance, dagster_pid: int) -> int:
    """The process of the ingest run in progress: the one its events came from."""
    runs = instance.get_runs(dg.RunsFilter(job_name="ingest_job",
                                           statuses=[dg.DagsterRunStatus.STARTED]), limit=1)
    if not runs:
        raise RuntimeError("no ingest run in progress to kill")
    started = instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.RUN_START)
    pid = started[0].dagster_event.pid if started and started[0].dagster_event else None
    if pid is None or pid not in descendants(dagster_pid):
        raise RuntimeError(f"the process of ingest run {runs[0].run_id} was not found")
    return pid


def recovery(kill: Kill, probes: list, within_s: float = WITHIN_S) -> dict:
    """`_recovery` against `within_s`, and against the live path's own latency in the minute
    before the kill (its p95), which on a loaded machine can itself be above `within_s`."""
    before = sorted(p.es_s for p in probes if p.es_s is not None
                    and kill.at - 60 <= p.sent_at and p.sent_at + p.es_s < kill.at)
    baseline = before[max(0, round(0.95 * len(before)) - 1)] if before else None
    result = {"target": kill.target, "pid": kill.pid, "killed_at": kill.at,
              **_recovery(kill, probes, within_s)}
    if baseline is not None:
        again = _recovery(kill, probes, max(within_s, baseline))
        result.update(baseline_p95_s=baseline, back_to_baseline_after_s=again["back_after_s"],
                      at_baseline_for_good_after_s=again["for_good_after_s"])
    return result


def _recovery(kill: Kill, probes: list, within_s: float) -> dict:
    """From the kill: seconds until Elasticsearch first served a probe sent since within
    `within_s` again, and until it did so for good (every later probe that fast: at a rate where
    the steady state is near `within_s`, a noisy figure); and the slowest probe since the kill."""
    after = [p for p in probes if p.sent_at >= kill.at]
    slowest = max((p.es_s for p in after if p.es_s is not None), default=None)
    lost = sum(p.es_s is None for p in after)
    back_at = min((p.sent_at + p.es_s for p in after if p.es_s is not None and p.es_s <= within_s),
                  default=None)
    steady_at = None
    for probe in reversed(after):
        if probe.es_s is None or probe.es_s > within_s:
            break
        steady_at = probe.sent_at + probe.es_s
    return {"probes_after_kill": len(after), "probes_never_served": lost, "slowest_probe_s": slowest,
            "back_within_s": within_s,
            "back_after_s": round(back_at - kill.at, 1) if back_at else None,
            "for_good_after_s": round(steady_at - kill.at, 1) if steady_at else None}


def failed_runs(instance: dg.DagsterInstance, since: float) -> list[dict]:
    """The runs that failed since `since`, each with what its alert said."""
    from datetime import UTC, datetime

    records = instance.get_run_records(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.FAILURE], updated_after=datetime.fromtimestamp(since, UTC)))
    failed = []
    for record in records:
        run = record.dagster_run
        failures = [e.dagster_event for e in instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)]
        failed.append({"run_id": run.run_id, "job": run.job_name,
                       "errors": step_errors(failures)})
    return failed


def topic_records(settings: Settings) -> int:
    """Records on the topic: its end offsets, summed (the sandbox's topic starts empty)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(settings.kafka_client_config(**{"group.id": "clickstream-bench-kill"}))
    try:
        partitions = consumer.list_topics(settings.topic, timeout=10).topics[settings.topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(settings.topic, p), timeout=10)[1]
                   for p in partitions)
    finally:
        consumer.close()


def landing_accounting(spark, settings: Settings, batches: list[dict]) -> dict:
    """Every record on the topic read once, and every event landed once: the topic's records
    against the batch log's, and the landing's rows against its distinct event ids and the batch
    log's count."""
    landing = spark.read.format("delta").load(IngestConfig.from_settings(settings).landing)
    counts = landing.selectExpr("count(*) rows", "count(distinct event_id) events").first()
    return {"topic_records": topic_records(settings),
            "logged_input_rows": sum(b["input_rows"] for b in batches),
            "landing_rows": counts["rows"], "distinct_events": counts["events"],
            "logged_landing_rows": sum(b["landing_rows"] for b in batches),
            "logged_dead_letters": sum(b["dead_letters"] for b in batches),
            "logged_duplicates_removed": sum(b["duplicates_removed"] for b in batches),
            "restarts": supervisor.read_restarts(settings.state_dir)}


def restarts_since(kill: Kill, now: dict) -> dict[str, int]:
    """Restarts by the supervisor since the kill, per service."""
    return {name: entry["count"] - kill.restarts_before.get(name, {}).get("count", 0)
            for name, entry in now.items()
            if entry["count"] > kill.restarts_before.get(name, {}).get("count", 0)}
