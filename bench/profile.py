"""`clickstream bench profile`: where the ingest's time goes, one layer of its transformation at a time.

One generated backlog is read from its own topic several times, each time through one more layer
of the ingest's own code (spark/ingest/transform.py), and written to Spark's no-op sink, so each
row prices only the reading and computing up to that layer:

    read        the Kafka source's columns, as the ingest's Arrow pass receives them
    pass        + the Arrow pass without the enrichment: decode, contract rules, lake columns
    enrich      + the enrichment: user agent, bots, IP country, referrer class, UTM
    dedup       + the dedup by event id (a batch dropDuplicates, not the streaming state store)

Then the real ingest (IngestJob, available-now) lands the same backlog in a scratch lake, with its
own phase timings. Before all that, the generator alone (no Kafka) runs on one core for a sample,
beside the producer's delivered rate: the ceiling that Python generation puts on `produce`; and
the Arrow pass alone runs on one core over the same sample, step by step, in microseconds per
event: the ceiling it puts on the ingest, with Spark's share left out.
The gap between a layer and the one before is that layer's cost; the gap between `dedup` and the
ingest is the streaming machinery, the cache and the Delta writes.

Each layer is timed `repeats` times and the fastest run is kept: a shared machine's noise only
ever adds time.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from clickstream_dagster.resources.spark import pipeline_spark
from config.settings import Settings
from contract.decoder import judge
from sandbox.pipeline import Sandbox
from simulator.producer import DEFAULT_WORKERS, produce
from simulator.timeline import SHARDS, GeneratorConfig, stream
from spark.ingest import event_pass
from spark.ingest.config import IngestConfig
from spark.ingest.event_pass import INPUT_COLUMNS, EventPass
from spark.ingest.stream import INGEST_CONF, IngestJob
from spark.ingest.transform import flat_events
from spark.session import stop_session

from .report import file_stamp, machine, started_now

PROFILE = "clickstream-profile"
GENERATION_SAMPLE = 200_000
ARROW_BATCH = 10_000  # Spark's spark.sql.execution.arrow.maxRecordsPerBatch


def layers(kafka_rows: DataFrame, first_day: str | None) -> dict[str, DataFrame]:
    """Each layer of the ingest's transformation on top of the one before, in order."""
    flat = flat_events(kafka_rows, first_day=first_day)
    return {
        "read": kafka_rows.select(*[c for c in INPUT_COLUMNS if c in kafka_rows.columns]),
        "pass": flat_events(kafka_rows, first_day=first_day, enrich=False),
        "enrich": flat,
        "dedup": flat.dropDuplicates(["dedup_key"]),
    }


def run_profile(base: Settings, events: int, *, repeats: int = 2, seed: int = 1,
                progress: bool = True) -> dict:
    """Produce `events`, time every layer and the real ingest; returns the results document."""
    started_at = started_now()
    sandbox = Sandbox(PROFILE, base)
    sandbox.reset()
    settings = sandbox.settings
    # The same faults as `clickstream bench`, so the dedup and the dead letters do real work.
    config = GeneratorConfig(events=events, seed=seed, duplicate_ratio=0.01, malformed_ratio=0.001)
    generation = _time_generation(config)
    one_core = _time_pass(config, settings.first_day)
    _say("pass      " + ", ".join(f"{k} {v} us" for k, v in one_core["us_per_event"].items())
         + " per event on one core")
    summary = produce(config, settings, workers=DEFAULT_WORKERS, progress=progress)
    generation["produce_events_per_s"] = summary.to_dict()["events_per_s"]
    generation["produce_workers"] = DEFAULT_WORKERS
    _say(f"generate  {generation['events_per_s_per_core']:,} events/s on one core, without Kafka; "
         f"produce {generation['produce_events_per_s']:,} events/s with {DEFAULT_WORKERS} workers")
    # The ingest's own session settings, so each layer is generated and run as the ingest's is.
    spark = pipeline_spark(settings, "clickstream-profile", conf=INGEST_CONF)
    try:
        timed = _time_layers(spark, settings, summary.delivered, repeats)
        timed["ingest"] = _real_ingest(spark, settings, summary.delivered)
    finally:
        stop_session(spark)
    _say(f"ingest    {timed['ingest']['seconds']:7.2f} s   phases {timed['ingest']['phase_seconds']}")
    return {"started_at": started_at, "machine": machine(), "events": summary.delivered,
            "repeats": repeats, "generation": generation, "pass_on_one_core": one_core,
            "stages": timed}


def _time_generation(config: GeneratorConfig) -> dict:
    """Events/s of the generator alone in this process (one core), over one worker's shards of a
    sample with the backlog's faults: what a producer process can at best hand to Kafka."""
    sample = dataclasses.replace(config, events=GENERATION_SAMPLE * DEFAULT_WORKERS)
    shards = list(range(0, SHARDS, DEFAULT_WORKERS))
    started = time.perf_counter()
    generated = sum(1 for _ in stream(sample, shards))
    seconds = time.perf_counter() - started
    return {"events": generated, "seconds": round(seconds, 2),
            "events_per_s_per_core": round(generated / seconds)}


def _time_pass(config: GeneratorConfig, first_day: str | None) -> dict:
    """The Arrow pass alone in this process (one core), on a sample of the backlog in batches of
    Spark's Arrow size: microseconds per event for each step, and for the whole pass."""
    import pyarrow as pa

    sample = dataclasses.replace(config, events=GENERATION_SAMPLE)
    values = [message.value for message in stream(sample)]
    now = pa.array([time.time() * 1e6] * ARROW_BATCH, pa.int64()).cast(event_pass.TIMESTAMP)
    batches = []
    for start in range(0, len(values), ARROW_BATCH):
        chunk = values[start:start + ARROW_BATCH]
        n = len(chunk)
        batches.append(pa.RecordBatch.from_arrays(
            [pa.array([b"k"] * n, pa.binary()), pa.array(chunk, pa.binary()), pa.array(["t"] * n),
             pa.array([0] * n, pa.int32()), pa.array(range(start, start + n), pa.int64()),
             now[:n], now[:n]], names=INPUT_COLUMNS))
    spent = dict.fromkeys(["decode", "columns", "rules", "judge", "flatten+enrich", "whole pass"], 0.0)
    full = EventPass(first_day=first_day)
    for batch in batches:
        chunk = batch.column("value").to_pylist()
        started = time.perf_counter()
        events, positions = event_pass._decode(chunk, full.max_bytes)
        spent["decode"] += time.perf_counter() - started
        started = time.perf_counter()
        fields = event_pass._fields(events)
        spent["columns"] += time.perf_counter() - started
        started = time.perf_counter()
        passed = event_pass._passes_checks(fields)
        spent["rules"] += time.perf_counter() - started
        started = time.perf_counter()
        for position in set(range(len(chunk))) - set(positions[passed].tolist()):
            judge(chunk[position])
        spent["judge"] += time.perf_counter() - started
        started = time.perf_counter()
        full.process(batch)
        spent["whole pass"] += time.perf_counter() - started
    named = ("decode", "columns", "rules", "judge")
    spent["flatten+enrich"] = max(0.0, spent["whole pass"] - sum(spent[k] for k in named))
    return {"events": len(values), "us_per_event": {
        name: round(seconds * 1e6 / len(values), 2) for name, seconds in spent.items()}}


def _time_layers(spark: SparkSession, settings: Settings, events: int, repeats: int
                 ) -> dict[str, dict]:
    kafka_rows = (spark.read.format("kafka")
                  .options(**IngestConfig.from_settings(settings).spark_kafka_options)
                  .option("subscribe", settings.topic).option("startingOffsets", "earliest").load())
    timed: dict[str, dict] = {}
    previous = 0.0
    for name, frame in layers(kafka_rows, settings.first_day).items():
        seconds = _fastest(lambda frame=frame: frame.write.format("noop").mode("overwrite").save(),
                           repeats)
        timed[name] = {"seconds": round(seconds, 2), "events_per_s": round(events / seconds),
                       "layer_seconds": round(seconds - previous, 2)}
        previous = seconds
        _say(f"{name:<9} {seconds:7.2f} s   this layer {timed[name]['layer_seconds']:6.2f} s")
    return timed


def _real_ingest(spark: SparkSession, settings: Settings, events: int) -> dict:
    """The backlog through IngestJob into a scratch lake: the ingest as the asset runs it."""
    lake = Path(tempfile.mkdtemp(prefix="clickstream-profile-lake-"))
    try:
        config = dataclasses.replace(IngestConfig.from_settings(settings), lake_root=str(lake),
                                     consumer_group=f"{PROFILE}-ingest")
        started = time.perf_counter()
        batches = IngestJob(spark, config).run()
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    phases: dict[str, float] = {}
    for batch in batches:
        for phase, spent in batch.phase_seconds.items():
            phases[phase] = round(phases.get(phase, 0) + spent, 2)
    return {"seconds": round(seconds, 2), "events_per_s": round(events / seconds),
            "micro_batches": len(batches), "phase_seconds": phases}


def markdown(results: dict) -> str:
    gen = results["generation"]
    one_core = results.get("pass_on_one_core", {}).get("us_per_event", {})
    lines = [f"generator alone: {gen['events_per_s_per_core']:,} events/s on one core; "
             f"produce: {gen['produce_events_per_s']:,} events/s with {gen['produce_workers']} "
             f"workers", "",
             "Arrow pass alone, one core, us per event: "
             + (", ".join(f"{k} {v}" for k, v in one_core.items()) or "not measured"), "",
             f"{results['events']:,} events, fastest of {results['repeats']} per layer",
             "", "| layer | seconds | events/s | this layer, s |", "| --- | ---: | ---: | ---: |"]
    for name, stage in results["stages"].items():
        extra = stage.get("layer_seconds", "")
        if name == "ingest":
            extra = ", ".join(f"{k} {v}" for k, v in stage["phase_seconds"].items())
        lines.append(f"| {name} | {stage['seconds']} | {stage['events_per_s']:,} | {extra} |")
    return "\n".join(lines)


def write(results: dict, directory: Path) -> Path:
    """bench/results/profile-<time>.json, copied to profile-latest.json."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"profile-{file_stamp(results)}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    shutil.copyfile(path, directory / "profile-latest.json")
    return path


def _fastest(action: Callable[[], None], repeats: int) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def _say(message: str) -> None:
    print(f"[profile {time.strftime('%H:%M:%S')}] {message}", flush=True)
