"""Freshness: the continuous ingest query runs while the producer sends at a steady rate.

Per row, latency = the moment the row's micro-batch became visible in the landing lake (its
`landed_at`, logged when the batch's Delta commit completed) minus the row's Kafka timestamp (set
by the producer on send). A row's batch is the one whose logged offset range holds its offset.
The trigger is the live path's (CLICKSTREAM_INGEST_TRIGGER_S) unless the caller sets one. The path
on to Elasticsearch, through the sensors' runs and the live documents, is `clickstream bench live`.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime

from clickstream_dagster.resources.spark import pipeline_spark
from sandbox.pipeline import Sandbox
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from spark.ingest.config import CONTINUOUS, IngestConfig
from spark.ingest.stream import IngestJob

SETTLE_TIMEOUT_S = 120

ES_MEASURED_BY = "clickstream bench live (make bench-live)"


def continuous_freshness(sandbox: Sandbox, rate: float, seconds: float,
                         trigger_s: float | None = None) -> dict:
    sandbox.reset()
    settings = sandbox.settings
    spark = pipeline_spark(settings, "clickstream-dagster")
    trigger = f"{settings.ingest_trigger_s if trigger_s is None else trigger_s:g} seconds"
    job = IngestJob(spark, IngestConfig.from_settings(settings, mode=CONTINUOUS,
                                                      starting_offsets="latest",
                                                      processing_time=trigger))
    query = job.start()
    try:
        _wait(lambda: job.batches, "the first (empty) micro-batch, which pins the start offsets")
        summary = produce(GeneratorConfig(events=int(rate * seconds), seed=2), settings, rate=rate,
                          progress=False)
        if summary.failed:
            raise RuntimeError(f"freshness: {summary.failed} events were not delivered: "
                               f"{summary.errors}")
        # Done when a batch's end offsets reach the topic's: a batch's offsets are fixed when
        # Spark plans it, so its start time alone says nothing about what it read.
        produced_to = sandbox.resources()["kafka"].end_offsets()
        _wait(lambda: any(_reached(b.end_offsets, produced_to) for b in job.batches),
              "micro-batch that read up to the last produced offset")
    finally:
        query.stop()
    batches = job.batches
    rows = spark.read.format("delta").load(job.config.landing).select(
        "kafka_partition", "kafka_offset", "kafka_timestamp").collect()
    latencies = sorted((_landed_at(batches, r["kafka_partition"], r["kafka_offset"])
                        - r["kafka_timestamp"].replace(tzinfo=UTC)).total_seconds() for r in rows)
    if len(latencies) < 2:
        raise RuntimeError(f"only {len(latencies)} rows landed during the freshness run")
    q = statistics.quantiles(latencies, n=100)
    return {"events": len(latencies), "produced": summary.produced, "rate_per_s": rate, "seconds": seconds,
            "trigger": job.config.processing_time,
            # The rate each batch really saw: the real-time generator's sessions ramp up from zero.
            "batch_input_rows": [b.input_rows for b in job.batches],
            "lake": {"p50_s": round(q[49], 2), "p95_s": round(q[94], 2),
                     "max_s": round(latencies[-1], 2)},
            "elasticsearch": ES_MEASURED_BY}


def _landed_at(batches, partition: int, offset: int) -> datetime:
    for batch in batches:
        if batch.start_offsets.get(str(partition), 0) <= offset < batch.end_offsets.get(str(partition), 0):
            return datetime.fromisoformat(batch.landed_at)
    raise RuntimeError(f"no logged micro-batch read offset {offset} of partition {partition}")


def _reached(batch_end: dict[str, int], topic_end: dict[int, int]) -> bool:
    return all(batch_end.get(str(p), 0) >= offset for p, offset in topic_end.items())


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"freshness: no {what} within {SETTLE_TIMEOUT_S} s")
        time.sleep(0.5)
