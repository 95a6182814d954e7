"""`clickstream bench`: every stage of the pipeline timed on the local stack, then end to end.

One day of generated traffic goes from an empty topic to verified Elasticsearch indices through
the same assets, checks and resources that Dagster runs (see sandbox/pipeline.py):

    produce     generate and deliver to Kafka
    ingest      the clickstream_landing asset: the backlog into the landing lake
    compact     the raw_clickstream asset for the day
    aggregate   the five analytics assets
    validate    every Great Expectations check, all blocking
    index       the three Elasticsearch index assets
    end_to_end  wall clock from the first produced event to every index verified
    freshness   continuous ingest at a steady rate: produce -> visible in the lake, per row

Stages inside a Dagster run are timed from the run's own event log (step start to step success),
so their seconds add up to the run, without a second pass over the data.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from clickstream_dagster.assets.analytics import ANALYTICS_ASSETS
from clickstream_dagster.assets.lake import raw_clickstream
from clickstream_dagster.assets.serving import SERVING_ASSETS
from clickstream_dagster.checks.anomalies import ANOMALY_CHECKS
from clickstream_dagster.checks.quality import QUALITY_CHECKS
from clickstream_dagster.checks.serving import SERVING_CHECKS
from clickstream_dagster.resources.spark import pipeline_spark
from config.settings import Settings
from sandbox.pipeline import Sandbox
from simulator.producer import DEFAULT_WORKERS, produce
from simulator.timeline import GeneratorConfig
from spark.session import stop_session

from .freshness import continuous_freshness
from .memory import MemorySampler

BENCH = "clickstream-bench"
GIB = 1024**3

# Which Dagster steps make up each stage of the daily run.
DAILY_STAGES = {
    "compact": [raw_clickstream.node_def.name],
    "aggregate": [asset.node_def.name for asset in ANALYTICS_ASSETS],
    "validate": [check.node_def.name for check in [*QUALITY_CHECKS, *ANOMALY_CHECKS]],
    # Loading, and reading each loaded day's count back through its alias.
    "index": [node.node_def.name for node in [*SERVING_ASSETS, *SERVING_CHECKS]],
}


def run_benchmark(base: Settings, events: int, *, seed: int = 1, freshness_rate: float = 2_000,
                  freshness_seconds: float = 60, freshness_trigger_s: float | None = None,
                  progress: bool = True) -> dict:
    """Every stage, timed; returns the results document (see bench/report.py for its shape)."""
    day = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    sandbox = Sandbox(BENCH, base)
    sandbox.reset()
    instance = dg.DagsterInstance.ephemeral()
    stages: dict[str, dict] = {}
    with MemorySampler(base) as memory:
        began = time.time()
        _say(f"produce: {events:,} events for {day:%Y-%m-%d} into {sandbox.settings.topic}")
        # Realistic faults, so dedup and dead letters do their real work: 1 % duplicates and
        # 0.1 % malformed records. No late events, so the whole day is one partition.
        config = GeneratorConfig(events=events, seed=seed, start=day, days=1,
                                 duplicate_ratio=0.01, malformed_ratio=0.001)
        summary = produce(config, sandbox.settings, workers=DEFAULT_WORKERS, progress=progress)
        stages["produce"] = _stage(summary.delivered, summary.elapsed_s, memory, began, time.time(),
                                   bytes_per_event=round(summary.bytes / max(summary.delivered, 1)))
        _say(_line("produce", stages["produce"]))

        # The JVM starts once per run in Dagster too; timed on its own so it is not billed to ingest.
        # Stopped at once: left idle, it would stay the process's default session after the server
        # closed it for idling (15 min into a 10M-event run), under the runs' own sessions.
        started = time.time()
        session = pipeline_spark(sandbox.settings, "clickstream-dagster")
        spark_start_s = time.time() - started
        stop_session(session)

        _say("ingest: the clickstream_landing asset, available-now")
        ingest = sandbox.ingest(instance)
        landing = _metadata(ingest, "clickstream_landing")
        (span,) = _step_spans(instance, ingest.run_id).values()
        stages["ingest"] = _stage(landing["records_consumed"], span[1] - span[0], memory, *span,
                                  rows_landed=landing["rows_landed"],
                                  duplicates_removed=landing["duplicates_removed"],
                                  dead_letters=landing["dead_letters"],
                                  micro_batches=landing["micro_batches"])
        _say(_line("ingest", stages["ingest"]))

        _say("daily run: compact, aggregate, validate (blocking), index")
        partition = day.date().isoformat()
        daily = sandbox.daily(instance, partition, partition)
        spans = _step_spans(instance, daily.run_id)
        day_events = _metadata(daily, "raw_clickstream")["dagster/row_count"]
        for stage, steps in DAILY_STAGES.items():
            stage_spans = [spans[step] for step in steps]
            stages[stage] = _stage(day_events, sum(end - start for start, end in stage_spans), memory,
                                   min(s for s, _ in stage_spans), max(e for _, e in stage_spans),
                                   steps={step: round(spans[step][1] - spans[step][0], 2)
                                          for step in steps})
        documents = _verify_indices(sandbox, daily)
        stages["index"]["documents"] = documents
        stages["index"]["documents_per_s"] = round(documents / stages["index"]["seconds"])
        for stage in DAILY_STAGES:
            _say(_line(stage, stages[stage]))
        stages["end_to_end"] = _stage(summary.delivered, time.time() - began, memory, began,
                                      time.time(), spark_start_s=round(spark_start_s, 2))
        _say(_line("end_to_end", stages["end_to_end"]))

        _say(f"freshness: continuous ingest at {freshness_rate:,.0f} events/s for "
             f"{freshness_seconds:.0f} s")
        started = time.time()
        fresh = continuous_freshness(Sandbox(f"{BENCH}-freshness", base), freshness_rate,
                                     freshness_seconds, freshness_trigger_s)
        stages["freshness"] = {**fresh, "peak_memory": memory.peak(started, time.time())}
        _say(f"freshness: p50 {fresh['lake']['p50_s']} s, p95 {fresh['lake']['p95_s']} s "
             f"(produce -> lake, trigger {fresh['trigger']})")
        stack_peak = memory.peak(began, time.time())
    return {"events": events, "seed": seed, "day": partition, "stages": stages,
            "stack_peak_memory": stack_peak}


def _stage(events: int, seconds: float, memory: MemorySampler, start: float, end: float,
           **extra) -> dict:
    return {"events": events, "seconds": round(seconds, 2),
            "events_per_s": round(events / seconds) if seconds else None,
            "peak_memory": memory.peak(start, end), **extra}


def _step_spans(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Step key -> (start, success) wall-clock times, from the run's event log."""
    records = instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_START,
                                                 dg.DagsterEventType.STEP_SUCCESS})
    starts: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for record in records:
        if record.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            starts[record.step_key] = record.timestamp
        else:
            spans[record.step_key] = (starts[record.step_key], record.timestamp)
    return spans


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The plain values of one asset's materialization metadata."""
    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _verify_indices(sandbox: Sandbox, daily: dg.ExecuteInProcessResult) -> int:
    """Every index asset's documents are searchable in Elasticsearch; returns their total."""
    client = sandbox.resources()["elasticsearch"].client()
    total = 0
    for asset in SERVING_ASSETS:
        for index, documents in _metadata(daily, asset.key.to_user_string())["indices"].items():
            client.indices.refresh(index=index)
            found = client.count(index=index)["count"]
            if found != documents:
                raise RuntimeError(f"{index}: {found:,} documents searchable, {documents:,} loaded")
            total += documents
    return total


def _line(stage: str, result: dict) -> str:
    rate = f"{result['events_per_s']:,} events/s" if result.get("events_per_s") else ""
    return f"{stage}: {result['events']:,} events in {result['seconds']:.1f} s  {rate}"


def _say(text: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {text}", flush=True)
