"""Ingest benchmarks: backlog throughput (Kafka -> landing lake) and continuous-mode freshness.

    python -m bench.ingest --events 1000000          # what `make bench` runs
    python -m bench.ingest --events 10000000 --freshness-seconds 120

Each run uses new topics, a new lake and a new checkpoint, and writes
bench/results/ingest-<timestamp>.json plus bench/results/ingest-latest.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from clickstream_dagster.generator.producer import DEFAULT_WORKERS, produce
from clickstream_dagster.generator.timeline import GeneratorConfig
from clickstream_dagster.settings import Settings
from clickstream_dagster.spark_session import ingest_config, local_spark
from clickstream_dagster.stack.kafka import create_topics, delete_topics
from clickstream_dagster.stack.versions import ELASTICSEARCH_VERSION, KAFKA_VERSION, SPARK_VERSION
from spark.ingest.stream import AVAILABLE_NOW, CONTINUOUS, IngestJob, read_batch_log

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "python": platform.python_version(),
        "versions": {"spark": SPARK_VERSION, "kafka": KAFKA_VERSION,
                     "elasticsearch": ELASTICSEARCH_VERSION},
    }


def backlog_throughput(spark, settings: Settings, events: int, max_offsets: int) -> dict:
    """Produce a backlog as fast as possible, then time one available-now ingest of all of it."""
    config = GeneratorConfig(events=events, seed=1)
    produced = produce(config, settings, workers=DEFAULT_WORKERS, progress=False)
    lake = tempfile.mkdtemp(prefix="bench-lake-")
    job = IngestJob(spark, ingest_config(dataclasses.replace(settings, lake_dir=lake),
                                         mode=AVAILABLE_NOW, max_offsets_per_trigger=max_offsets))
    started = time.perf_counter()
    batches = job.run()
    seconds = time.perf_counter() - started
    landed = sum(b.landing_rows for b in batches)
    files = sum(b.landing_files for b in batches)
    size = sum(b.landing_bytes for b in batches)
    return {
        "produce": {"events": produced.delivered, "seconds": round(produced.elapsed_s, 2),
                    "events_per_s": round(produced.delivered / produced.elapsed_s)},
        "ingest": {
            "events": landed, "seconds": round(seconds, 2), "events_per_s": round(landed / seconds),
            "batches": len(batches), "max_offsets_per_trigger": max_offsets,
            "landing_files": files, "avg_file_mib": round(size / max(files, 1) / 1024**2, 2),
            "phase_seconds": {k: round(sum(b.phase_seconds.get(k, 0) for b in batches), 2)
                              for k in ("read_parse_dedup", "landing", "dead_letters")},
        },
    }


def continuous_freshness(spark, settings: Settings, rate: float, seconds: float) -> dict:
    """Produce at a steady rate while the continuous query runs; per row, latency is the time the
    row's batch became visible in the lake minus the row's Kafka (produce) timestamp."""
    lake = tempfile.mkdtemp(prefix="bench-fresh-")
    config = ingest_config(dataclasses.replace(settings, lake_dir=lake), mode=CONTINUOUS,
                           starting_offsets="latest")
    query = IngestJob(spark, config).start()
    time.sleep(8)  # let the first (empty) batch pin the starting offsets
    generator = GeneratorConfig(events=int(rate * seconds), seed=2)
    producer = threading.Thread(target=produce, args=(generator, settings),
                                kwargs={"rate": rate, "progress": False})
    producer.start()
    producer.join()
    time.sleep(25)  # two more triggers, so every produced row has landed
    query.stop()
    landed = {b["batch_id"]: b["landed_at"] for b in read_batch_log(spark, lake)}
    rows = spark.read.parquet(config.landing).selectExpr(
        "kafka_timestamp", "regexp_extract(input_file_name(), 'part-b(\\\\d+)-', 1) as batch"
    ).collect()
    latencies = sorted(
        (datetime.fromisoformat(landed[int(r["batch"])]) - r["kafka_timestamp"].replace(tzinfo=UTC)
         ).total_seconds() for r in rows)
    q = statistics.quantiles(latencies, n=100)
    return {"events": len(latencies), "rate_per_s": rate, "trigger": config.processing_time,
            "p50_s": round(q[49], 2), "p95_s": round(q[94], 2), "max_s": round(latencies[-1], 2)}


def _bench_topics(settings: Settings, purpose: str) -> Settings:
    name = f"bench-{purpose}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    return dataclasses.replace(settings, topic=name, dlq_topic=f"{name}.dlq")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--max-offsets-per-trigger", type=int, default=1_000_000)
    parser.add_argument("--freshness-rate", type=float, default=2_000)
    parser.add_argument("--freshness-seconds", type=float, default=60)
    args = parser.parse_args(argv)
    base = Settings.from_env()
    settings = _bench_topics(base, "throughput")
    create_topics(base, {settings.topic: base.topic_partitions, settings.dlq_topic: 1})
    spark = local_spark(settings, "clickstream-bench")
    try:
        result = {"started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                  "machine": machine(),
                  **backlog_throughput(spark, settings, args.events, args.max_offsets_per_trigger)}
        fresh = _bench_topics(base, "freshness")
        create_topics(base, {fresh.topic: base.topic_partitions, fresh.dlq_topic: 1})
        try:
            result["freshness"] = continuous_freshness(spark, fresh, args.freshness_rate,
                                                       args.freshness_seconds)
        finally:
            delete_topics(base, [fresh.topic, fresh.dlq_topic])
    finally:
        delete_topics(base, [settings.topic, settings.dlq_topic])
        spark.stop()
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(result, indent=2)
    (RESULTS / f"ingest-{stamp}.json").write_text(text)
    (RESULTS / "ingest-latest.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
