"""Turns session walks into a deterministic, time-ordered stream of Kafka messages.

Users are split into a fixed number of shards. Each shard's stream is a pure function of
(seed, start, shard), so output is byte-identical for the same seed and start however many
processes produce it; one process owns a shard, so a user's events keep their order.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import orjson

from contract import max_event_bytes

from .population import User, build_population
from .sessions import walk_session

SHARDS = 16
# Relative traffic per UTC hour of day: quiet at night, a peak in the evening.
DIURNAL = [0.35, 0.25, 0.18, 0.15, 0.15, 0.2, 0.32, 0.5, 0.7, 0.85, 0.92, 0.95,
           1.0, 0.98, 0.95, 0.95, 1.0, 1.08, 1.18, 1.28, 1.3, 1.15, 0.85, 0.55]

VALID, DUPLICATE, LATE, MALFORMED = 0, 1, 2, 3
KIND_NAMES = {VALID: "valid", DUPLICATE: "duplicate", LATE: "late", MALFORMED: "malformed"}
MALFORMED_REASONS = ("invalid_json", "missing_field", "wrong_type", "bad_timestamp", "oversized",
                     "unknown_event_type")


SHIFT_STEP_S = 300.0  # with traffic shifts, sessions are placed in 5-minute steps: a shift is exact


@dataclass(frozen=True)
class TrafficShift:
    """New sessions start `factor` times as often as usual for `minutes` from `start`: above 1 a
    spike (a campaign, a bot wave), below 1 a drop (an outage, a broken tracker). The day's total
    stays the configured events; the rest of it is scaled to make room."""

    start: datetime
    minutes: float
    factor: float

    def __post_init__(self):
        if self.minutes <= 0 or self.factor < 0 or self.start.tzinfo is None:
            raise ValueError("a traffic shift needs minutes > 0, a factor >= 0 and a UTC start")

    def overlap_ms(self, begin_ms: int, end_ms: int) -> int:
        start_ms = int(self.start.timestamp() * 1000)
        return max(0, min(end_ms, start_ms + int(self.minutes * 60_000)) - max(begin_ms, start_ms))


@dataclass(frozen=True)
class GeneratorConfig:
    events: int
    seed: int = 42
    start: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    days: float = 1.0
    users: int = 10_000
    duplicate_ratio: float = 0.0
    late_ratio: float = 0.0
    max_lateness_s: float = 600.0
    malformed_ratio: float = 0.0
    diurnal: bool = True  # False spreads traffic evenly (real-time mode)
    bucket_s: float = 3600.0  # generation step; real-time mode uses seconds so sending starts at once
    shifts: tuple[TrafficShift, ...] = ()  # injected spikes and drops, for anomaly detection

    def __post_init__(self):
        if self.events < 0 or self.days <= 0 or self.users < 1:
            raise ValueError("events must be >= 0, days > 0 and users >= 1")
        ratios = (self.duplicate_ratio, self.late_ratio, self.malformed_ratio)
        if any(r < 0 for r in ratios) or sum(ratios) >= 1:
            raise ValueError("fault ratios must be >= 0 and add up to less than 1")
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware (UTC)")

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.days * 86_400_000)

    @property
    def bucket_ms(self) -> int:
        step_s = min(self.bucket_s, SHIFT_STEP_S) if self.shifts else self.bucket_s
        return max(1000, int(step_s * 1000))

    def shift_factor(self, begin_ms: int, end_ms: int) -> float:
        """How much busier than usual [begin_ms, end_ms) is, by the shifts that overlap it."""
        return 1.0 + sum((shift.factor - 1.0) * shift.overlap_ms(begin_ms, end_ms)
                         for shift in self.shifts) / max(1, end_ms - begin_ms)


class Message(NamedTuple):
    """One Kafka message. Field order is the delivery order: time, then shard, then sequence."""

    delivery_ms: int
    shard: int
    seq: int
    kind: int
    key: bytes
    value: bytes
    event_ts_ms: int
    reason: str | None


_message = tuple.__new__  # builds a Message without NamedTuple's Python-level __new__


def bucket_quotas(config: GeneratorConfig, total: int) -> list[int]:
    """Split `total` messages over the buckets by the traffic curve (largest remainder)."""
    size = config.bucket_ms
    buckets = max(1, math.ceil((config.end_ms - config.start_ms) / size))
    weights = []
    for b in range(buckets):
        hour = datetime.fromtimestamp((config.start_ms + b * size) / 1000, UTC).hour
        begin = config.start_ms + b * size
        span = min(size, config.end_ms - begin) / size
        shifted = config.shift_factor(begin, begin + size) if config.shifts else 1.0
        weights.append((DIURNAL[hour] if config.diurnal else 1.0) * span * shifted)
    scale = total / sum(weights)
    raw = [w * scale for w in weights]
    quotas = [int(r) for r in raw]
    by_remainder = sorted(range(buckets), key=lambda b: (raw[b] - quotas[b], -b), reverse=True)
    for b in by_remainder[: total - sum(quotas)]:
        quotas[b] += 1
    return quotas


def shard_quota(total: int, shard: int) -> int:
    return total // SHARDS + (1 if shard < total % SHARDS else 0)


class _Ids:
    """Cheap deterministic UUID-shaped ids: a per-shard random prefix and a counter."""

    def __init__(self, *parts):
        digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=10).hexdigest()
        variant = "89ab"[int(digest[15], 16) % 4]
        self.prefix = f"{digest[:8]}-{digest[8:12]}-4{digest[12:15]}-{variant}{digest[16:19]}-"
        self.counter = 0

    def next(self) -> str:
        self.counter += 1
        return f"{self.prefix}{self.counter:012x}"


class _Timestamps:
    """ISO-8601 UTC with milliseconds. strftime is slow, so the per-minute prefix is cached."""

    def __init__(self):
        self._cache: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        minute, rest = divmod(ms, 60_000)
        prefix = self._cache.get(minute)
        if prefix is None:
            if len(self._cache) > 100_000:
                self._cache.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
            self._cache[minute] = prefix
        sec, millis = divmod(rest, 1000)
        return f"{prefix}{sec:02d}.{millis:03d}Z"


def shard_buckets(config: GeneratorConfig, shard: int, population: list[User],
                  chunk: int = 0) -> Iterator[list[Message]]:
    """One shard's messages, as one delivery-ordered list per hour bucket plus a final list."""
    users = population[shard::SHARDS] or population
    quotas = bucket_quotas(config, shard_quota(config.events, shard))
    event_ids = _Ids("event", config.seed, config.start_ms, chunk, shard)
    session_ids = _Ids("session", config.seed, config.start_ms, chunk, shard)
    iso = _Timestamps()
    dumps = _compact_json
    end_ms = config.end_ms
    p_malformed = config.malformed_ratio
    p_duplicate = p_malformed + config.duplicate_ratio
    p_late = p_duplicate + config.late_ratio
    max_lateness_ms = max(1, int(config.max_lateness_s * 1000))
    oversize = max_event_bytes() + 1024
    carry: list[Message] = []  # generated, but due after the current bucket
    recent: deque[Message] = deque(maxlen=128)  # valid messages a duplicate may repeat
    seq = 0

    for bucket, left in enumerate(quotas):
        rng = random.Random(f"{config.seed}:{config.start_ms}:{chunk}:{shard}:{bucket}")
        bucket_start = config.start_ms + bucket * config.bucket_ms
        bucket_len = min(config.bucket_ms, end_ms - bucket_start)
        out = carry
        while left > 0:
            user = users[rng.randrange(len(users))]
            session_start = bucket_start + int(rng.random() * bucket_len)
            campaign, steps = walk_session(rng, session_start, max_events=left)
            session_user = {"user_id": user.user_id, "session_id": session_ids.next()}
            key = user.user_id.encode()
            for ts, event_type, url, referrer, props in steps:
                if ts >= end_ms or left == 0:
                    break  # the visitor is still browsing when the simulated range ends
                roll = rng.random()
                while p_malformed <= roll < p_duplicate and recent and left > 1:
                    # A client retry: the very same bytes again, a little later.
                    original = recent[rng.randrange(len(recent))]
                    seq += 1
                    out.append(_message(Message, (
                        max(original.delivery_ms, ts) + rng.randrange(30_000), shard, seq,
                        DUPLICATE, original.key, original.value, original.event_ts_ms, None)))
                    left -= 1
                    roll = rng.random()
                event = {
                    "schema_version": 1,
                    "event_id": event_ids.next(),
                    "event_type": event_type,
                    "event_ts": iso(ts),
                    "user": session_user,
                    "page": {"url": url, "referrer": referrer},
                    "geo": user.geo,
                    "device": user.device,
                    "campaign": campaign,
                    "properties": props,
                }
                seq += 1
                if roll < p_malformed:
                    reason = MALFORMED_REASONS[rng.randrange(len(MALFORMED_REASONS))]
                    message = (ts, shard, seq, MALFORMED, key, _malform(event, reason, oversize),
                               ts, reason)
                elif p_duplicate <= roll < p_late:
                    # Late by between half and all of the maximum lateness: clearly out of order.
                    delivery = ts + rng.randint(max(1, max_lateness_ms // 2), max_lateness_ms)
                    message = (delivery, shard, seq, LATE, key, dumps(event), ts, None)
                else:
                    message = (ts, shard, seq, VALID, key, dumps(event), ts, None)
                message = _message(Message, message)
                if message.kind == VALID:
                    recent.append(message)
                out.append(message)
                left -= 1
        # Later buckets start later, so everything due before the next bucket is final.
        out.sort()
        horizon = bucket_start + config.bucket_ms
        cut = bisect_left(out, (horizon,))
        carry = out[cut:]
        yield out[:cut]
    yield carry


def stream(config: GeneratorConfig, shards: list[int] | None = None, chunk: int = 0
           ) -> Iterator[Message]:
    """Messages of the given shards (all by default), in one deterministic delivery order.

    Shards advance bucket by bucket together, so the stream is time-ordered as a whole.
    """
    population = build_population(config.users, config.seed)
    selected = range(SHARDS) if shards is None else shards
    for buckets in zip(*(shard_buckets(config, s, population, chunk) for s in selected),
                       strict=True):
        merged = [m for bucket in buckets for m in bucket]
        merged.sort()
        yield from merged


def _compact_json(event: dict) -> bytes:
    # orjson's result keeps its whole 4 KiB write buffer allocated; an exact-size copy holds only
    # the ~650 bytes of the event, and a bucket of messages waiting to be sent shrinks 6-fold.
    return bytes(memoryview(orjson.dumps(event)))


def _malform(event: dict, reason: str, oversize: int) -> bytes:
    """A message that breaks the contract in one specific way."""
    bad = dict(event)
    if reason == "invalid_json":
        raw = orjson.dumps(bad)
        return raw[: len(raw) // 2]
    if reason == "missing_field":
        del bad["event_id"]
    elif reason == "wrong_type":
        bad["user"] = event["user"]["user_id"]  # a string where an object belongs
    elif reason == "bad_timestamp":
        bad["event_ts"] = event["event_ts"][:5] + "13-45T25:61:00.000Z"
    elif reason == "oversized":
        bad["properties"] = {**(event["properties"] or {}), "padding": "x" * oversize}
    elif reason == "unknown_event_type":
        bad["event_type"] = "teleport"
    return orjson.dumps(bad)
