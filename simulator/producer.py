"""Delivering the simulated stream: to Kafka (one or more producer processes) or to a JSONL file."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import KafkaException, Producer
from tqdm import tqdm

from config.clients import kafka_admin
from config.settings import Settings

from .timeline import (
    KIND_NAMES,
    MALFORMED,
    SHARDS,
    GeneratorConfig,
    TrafficShift,
    stream,
)

# Throughput settings: large lz4-compressed batches, with idempotence so a retry never duplicates.
PRODUCER_CONF = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "lz4",
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "message.timeout.ms": 120_000,
    # Only failures call back into Python; delivered = enqueued - failed - unflushed.
    "delivery.report.only.error": True,
}
BATCH = 2_000
REALTIME_BUCKET_S = 10
CONNECT_TIMEOUT_S = 10
TOPIC_WAIT_S = 5


class GeneratorError(RuntimeError):
    """The generator could not deliver; the message says why and what to do."""


@dataclass
class Summary:
    produced: int = 0
    failed: int = 0
    bytes: int = 0
    kinds: Counter = field(default_factory=Counter)
    malformed_reasons: Counter = field(default_factory=Counter)
    elapsed_s: float = 0.0
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return self.produced - self.failed

    def merge(self, other: Summary) -> None:
        self.produced += other.produced
        self.failed += other.failed
        self.bytes += other.bytes
        self.kinds.update(other.kinds)
        self.malformed_reasons.update(other.malformed_reasons)
        self.interrupted |= other.interrupted
        self.errors.extend(other.errors[:5])

    def to_dict(self) -> dict:
        seconds = max(self.elapsed_s, 1e-9)
        return {
            "produced": self.produced,
            "delivered": self.delivered,
            "failed": self.failed,
            "valid": self.kinds["valid"],
            "late": self.kinds["late"],
            "duplicates": self.kinds["duplicate"],
            "malformed": self.kinds["malformed"],
            "malformed_reasons": dict(sorted(self.malformed_reasons.items())),
            "bytes": self.bytes,
            "seconds": round(self.elapsed_s, 3),
            "events_per_s": round(self.delivered / seconds),
            "bytes_per_s": round(self.bytes / seconds),
            "interrupted": self.interrupted,
        }

    def render(self) -> str:
        d = self.to_dict()
        reasons = ", ".join(f"{k} {v:,}" for k, v in d["malformed_reasons"].items())
        lines = [
            f"{'delivered':<11} {d['delivered']:>12,}   failed {d['failed']:,}"
            + ("   (interrupted)" if self.interrupted else ""),
            f"{'valid':<11} {d['valid']:>12,}",
            f"{'late':<11} {d['late']:>12,}",
            f"{'duplicates':<11} {d['duplicates']:>12,}",
            f"{'malformed':<11} {d['malformed']:>12,}" + (f"   ({reasons})" if reasons else ""),
            f"{'rate':<11} {d['events_per_s']:>12,} events/s   "
            f"{d['bytes_per_s'] / 1e6:,.1f} MB/s over {d['seconds']:.2f} s",
        ]
        return "\n".join(lines + [f"error: {e}" for e in self.errors[:5]])


def check_topic(settings: Settings, topic: str) -> int:
    """Fail fast, within a bounded time, when the broker is unreachable or the topic is missing."""
    admin = kafka_admin(settings, timeout_s=CONNECT_TIMEOUT_S)
    # Each broker learns of a new topic on its own: one may not know yet what another created.
    deadline = time.monotonic() + TOPIC_WAIT_S
    while True:
        try:
            metadata = admin.list_topics(timeout=CONNECT_TIMEOUT_S)
        except KafkaException as exc:
            raise GeneratorError(
                f"Cannot reach Kafka at {settings.kafka_bootstrap_servers} within "
                f"{CONNECT_TIMEOUT_S} s ({exc.args[0].str() if exc.args else exc}). Start the "
                f"stack with `clickstream stack up` or set KAFKA_BOOTSTRAP_SERVERS."
            ) from None
        if topic in metadata.topics or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if topic not in metadata.topics:
        raise GeneratorError(
            f"Topic {topic!r} does not exist on {settings.kafka_bootstrap_servers}. "
            f"`clickstream stack up` creates it, or create it with your cluster's tooling."
        )
    return len(metadata.topics[topic].partitions)


def write_jsonl(config: GeneratorConfig, path: Path, *, progress: bool = True) -> Summary:
    """The same messages as the Kafka output, one per line, in delivery order."""
    summary = Summary()
    started = time.perf_counter()
    bar = tqdm(total=config.events, unit="ev", unit_scale=True, disable=not progress, smoothing=0.1)
    try:
        with open(path, "wb") as out:
            for message in stream(config):
                out.write(message.value + b"\n")
                _count(summary, message)
                if summary.produced % 10_000 == 0:
                    bar.update(10_000)
    except KeyboardInterrupt:
        summary.interrupted = True
    bar.n = summary.produced
    bar.close()
    summary.elapsed_s = time.perf_counter() - started
    return summary


def produce(config: GeneratorConfig, settings: Settings, *, topic: str | None = None,
            workers: int = 1, rate: float = 0, progress: bool = True) -> Summary:
    """Generate and deliver to Kafka, keyed by user_id; rate > 0 paces delivery in real time."""
    topic = topic or settings.topic
    check_topic(settings, topic)
    workers = max(1, min(workers, SHARDS))
    shard_sets = [list(range(w, SHARDS, workers)) for w in range(workers)]
    started = time.perf_counter()
    if workers == 1:
        summary = _produce_shards(config, shard_sets[0], settings.kafka_client_config(), topic,
                                  rate, progress=progress)
    else:
        summary = _produce_in_processes(config, shard_sets, settings.kafka_client_config(), topic,
                                        rate, progress)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def realtime_config(config: GeneratorConfig, rate: float, chunk_events: int | None = None
                    ) -> GeneratorConfig:
    """In real-time mode the timeline starts now and spans events / rate seconds, evenly loaded,
    so each event's time is the moment it is sent."""
    events = chunk_events or config.events
    now = datetime.now(UTC).replace(microsecond=0)
    return replace(config, events=events, start=now, days=events / rate / 86_400, diurnal=False,
                   bucket_s=REALTIME_BUCKET_S)


def _produce_shards(config, shards, client, topic, rate, *, progress=False, counter=None,
                    progress_every=5_000) -> Summary:
    summary = Summary()
    failures: list[str] = []

    def on_error(err, _msg):
        failures.append(err.str())

    # `client`: the cluster's address and security settings (Settings.kafka_client_config).
    producer = Producer({**PRODUCER_CONF, **client, "on_delivery": on_error})
    bar = tqdm(total=config.events, unit="ev", unit_scale=True, disable=not progress, smoothing=0.1)
    batch: list[dict] = []
    unbounded = rate > 0 and config.events == 0
    chunk = 0
    try:
        while True:
            run = realtime_config(config, rate, int(rate * 3600) if unbounded else None) \
                if rate > 0 else config
            for message in stream(run, shards, chunk):
                if rate > 0:
                    _wait_until(message.delivery_ms)
                batch.append({"key": message.key, "value": message.value})
                _count(summary, message)
                if len(batch) >= BATCH or rate > 0:
                    _send(producer, topic, batch)
                    batch = []
                if summary.produced % progress_every == 0:
                    bar.update(progress_every)
                    if counter is not None:
                        with counter.get_lock():
                            counter.value += progress_every
            if not unbounded:
                break
            chunk += 1
    except KeyboardInterrupt:
        summary.interrupted = True
    _send(producer, topic, batch)
    bar.n = summary.produced
    bar.close()
    unflushed = producer.flush(60)
    summary.failed = len(failures) + unflushed
    summary.errors = sorted(set(failures))[:5] + (
        [f"{unflushed} messages were still undelivered after a 60 s flush"] if unflushed else [])
    return summary


def _send(producer: Producer, topic: str, batch: list[dict]) -> None:
    while batch:
        try:
            producer.produce_batch(topic, batch)
        except BufferError:
            producer.poll(0.05)
            continue
        # A full local queue rejects the tail of the batch; wait for room and resend only that.
        rejected = [m for m in batch if "_error" in m]
        for m in rejected:
            del m["_error"]
        batch = rejected
        producer.poll(0 if not batch else 0.05)


def _wait_until(delivery_ms: int) -> None:
    delay = delivery_ms / 1000 - time.time()
    if delay > 0:
        time.sleep(delay)


def _count(summary: Summary, message) -> None:
    summary.produced += 1
    summary.bytes += len(message.value)
    summary.kinds[KIND_NAMES[message.kind]] += 1
    if message.kind == MALFORMED:
        summary.malformed_reasons[message.reason] += 1


def _worker(config, shards, client, topic, rate, counter, results):
    try:
        summary = _produce_shards(config, shards, client, topic, rate, counter=counter)
    except KeyboardInterrupt:
        summary = Summary(interrupted=True)
    except Exception as exc:  # reported by the parent, never swallowed
        summary = Summary(errors=[f"worker failed: {exc!r}"], failed=1)
    results.put(summary)


def _produce_in_processes(config, shard_sets, client, topic, rate, progress) -> Summary:
    # spawn, not fork: librdkafka's threads must never be copied into a child.
    ctx = mp.get_context("spawn")
    counter = ctx.Value("q", 0)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(config, shards, client, topic, rate, counter,
                                               results), daemon=True)
             for shards in shard_sets]
    for p in procs:
        p.start()
    summary = Summary()
    bar = tqdm(total=config.events or None, unit="ev", unit_scale=True, disable=not progress)
    collected = 0
    while collected < len(procs):
        try:
            while results.empty() and any(p.is_alive() for p in procs):
                bar.n = counter.value
                bar.refresh()
                time.sleep(0.2)
            if results.empty():
                raise GeneratorError("a producer process died without reporting; see its output")
            summary.merge(results.get())
            collected += 1
        except KeyboardInterrupt:
            summary.interrupted = True  # children flush and report; keep collecting
    bar.n = summary.produced
    bar.close()
    for p in procs:
        p.join(timeout=10)
    return summary


DEFAULT_WORKERS = min(2, os.cpu_count() or 1)
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """'90', '90s', '10m', '2h' or '1d' as seconds."""
    text = text.strip().lower()
    unit = DURATION_UNITS.get(text[-1:])
    number = text[:-1] if unit else text
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration; use e.g. 90s, 10m, 2h or 1d") from None
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_shift(text: str, day: datetime) -> TrafficShift:
    """'14:00,15m,4' -> a shift of `day` at 14:00 UTC, 15 minutes long, four times the traffic."""
    try:
        at, duration, factor = (part.strip() for part in text.split(","))
        hour, minute = (int(part) for part in at.split(":"))
        start = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return TrafficShift(start, parse_duration(duration) / 60, float(factor))
    except ValueError as exc:
        raise ValueError(f"--shift {text!r}: {exc}; use HH:MM,DURATION,FACTOR such as "
                         "14:00,15m,4 (a spike) or 19:00,30m,0 (a drop)") from None


def default_start(now: datetime | None = None) -> datetime:
    """Midnight UTC today: by default the simulated traffic fills today's partition."""
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)
