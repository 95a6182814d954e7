"""Fuzzing the real ingest: 10,000 generated bad inputs mixed with 2,000 valid events.

The inputs come from a seeded generator (the same seed gives the same 12,000 records): random
bytes, bytes that are not UTF-8, truncated JSON, deep nesting, wrong types, nulls, huge strings,
and valid events with exactly one field broken or one field the contract does not know. Every
bad input must reach the dead-letter topic and the bad-rows table with a reason, and where one
field is to blame the reason names it; the query must survive all of them, and every valid event
must land exactly once.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Producer

from contract.spark import field_rules
from simulator.timeline import GeneratorConfig, stream
from spark.ingest.stream import IngestJob
from tests.helpers import consume_all, create_topics, delete_topics, isolated_topics, set_field

SEED = 20261129
BAD_INPUTS = 10_000
VALID_EVENTS = 2_000
# Reasons a record gets when it is not a JSON object of the contract's shape at all: no single
# field is to blame. Deeply nested {"a": {"a": ...}} is an object, just one with none of the
# contract's fields, so it may also be missing its first required field.
SHAPELESS = {"invalid_json", "wrong_type", "oversized"}
ALLOWED = {"deep_nesting": SHAPELESS | {"missing_field"}}
OBJECT_FIELDS = ["user", "page", "geo", "device"]
REQUIRED = [rule.path for rule in field_rules() if rule.required]
# Free-text fields: neither a pattern nor an enum keeps a number or an object out of them.
TEXT_FIELDS = [r.path for r in field_rules() if r.is_string and r.pattern is None and r.enum is None]


@dataclasses.dataclass(frozen=True)
class BadInput:
    kind: str
    value: bytes
    field: str | None = None  # the field the reason must name, when one field is broken


def _set(event: dict, path: str, value) -> dict:
    return set_field(event, path.split("."), value)


def _one_field_broken(rng: random.Random, event: dict) -> tuple[str, object]:
    """A field and a value that breaks exactly the contract's rule for it."""
    return rng.choice([
        ("event_id", "not-a-uuid"),
        ("event_type", rng.choice(["teleport", "PAGE_VIEW", ""])),
        ("event_ts", rng.choice(["2026-13-01T00:00:00.000Z", "yesterday", "2026-06-01 10:00:00"])),
        ("schema_version", rng.choice([0, 2, 99])),
        ("user.user_id", rng.choice(["", "u" * rng.randint(65, 400)])),
        ("user.session_id", rng.choice(["", "s" * rng.randint(65, 400)])),
        ("page.url", rng.choice(["ftp://x", "not a url", "https://" + "p" * 2100])),
        ("geo.country", rng.choice(["deu", "D", "12", ""])),
        ("geo.ip", rng.choice(["300.1.1.1", "1.2.3", "localhost", "1.2.3.4.5"])),
        ("device.type", rng.choice(["watch", "Desktop", ""])),
        ("device.user_agent", "A" * rng.randint(513, 3000)),
        ("geo.city", "c" * rng.randint(129, 1000)),
        # Any JSON value but a string where the contract says string.
        (rng.choice([f for f in TEXT_FIELDS if event.get(f.split(".")[0]) is not None]),
         rng.choice([12345, -0.5, True, False, {"a": 1}, ["x"]])),
        (rng.choice(REQUIRED), KeyError),
        (rng.choice(REQUIRED), None),
        # A key the contract does not know, at any level but the free-form properties.
        (rng.choice(["nickname", "user.nickname", "page.title", "geo.zip", "device.model"]),
         rng.choice(["x", 7, None, {"a": 1}, [], "referrer"])),
    ])


def generate_bad_inputs(valid: list[bytes], count: int, seed: int) -> list[BadInput]:
    rng = random.Random(seed)
    kinds = ["random_bytes", "not_utf8", "truncated", "deep_nesting", "wrong_object_type",
             "wrong_version_type", "huge", "one_field_broken", "one_field_broken", "one_field_broken"]
    inputs: list[BadInput] = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        base = rng.choice(valid)
        if kind == "random_bytes":
            value = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
            inputs.append(BadInput(kind, value))
        elif kind == "not_utf8":
            at = base.index(b'"city":"') + len(b'"city":"')
            stray = rng.choice([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x9f\x98"])
            inputs.append(BadInput(kind, base[:at] + stray + base[at:]))
        elif kind == "truncated":
            inputs.append(BadInput(kind, base[:rng.randint(1, len(base) - 1)]))
        elif kind == "deep_nesting":
            depth = rng.randint(200, 7_000)
            opening, closing = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
            inputs.append(BadInput(kind, opening * depth + b"1" + closing * depth))
        elif kind == "wrong_object_type":
            event = _set(orjson.loads(base), rng.choice(OBJECT_FIELDS),
                         rng.choice([1, "text", [1, 2], True]))
            inputs.append(BadInput(kind, orjson.dumps(event)))
        elif kind == "wrong_version_type":
            event = _set(orjson.loads(base), "schema_version", rng.choice(["1", 1.5, True, [1]]))
            inputs.append(BadInput(kind, orjson.dumps(event)))
        elif kind == "huge":
            event = _set(orjson.loads(base), "properties",
                         {"padding": "x" * rng.randint(17_000, 24_000)})
            inputs.append(BadInput(kind, orjson.dumps(event)))
        else:
            field, value = _one_field_broken(rng, orjson.loads(base))
            event = _set(orjson.loads(base), field, value)
            inputs.append(BadInput(kind, orjson.dumps(event), field))
    return inputs


def _valid_events() -> list[bytes]:
    config = GeneratorConfig(events=VALID_EVENTS, seed=SEED, start=datetime(2026, 6, 1, tzinfo=UTC),
                             days=1)
    return [message.value for message in stream(config)]


@pytest.fixture(scope="module")
def fuzzed(stack, spark, tmp_path_factory):
    settings = isolated_topics(stack)
    create_topics(stack, {settings.topic: 3, settings.dlq_topic: 1})
    valid = _valid_events()
    bad = generate_bad_inputs(valid, BAD_INPUTS, SEED)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                         "enable.idempotence": True, "acks": "all",
                         "message.max.bytes": 1_000_000})
    failed: list = []

    def on_delivery(err, _msg):
        if err is not None:
            failed.append(err)

    records = [(f"bad-{i}".encode(), b.value) for i, b in enumerate(bad)]
    records += [(f"valid-{i}".encode(), v) for i, v in enumerate(valid)]
    random.Random(SEED).shuffle(records)  # bad and valid interleaved in every micro-batch
    for key, value in records:
        producer.produce(settings.topic, key=key, value=value, on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(60) == 0 and not failed

    lake = tmp_path_factory.mktemp("lake")
    config = dataclasses.replace(settings, lake_dir=str(lake)).ingest_config(
        max_offsets_per_trigger=2_500)
    batches = IngestJob(spark, config).run()
    yield settings, config, batches, valid, bad
    delete_topics(stack, [settings.topic, settings.dlq_topic])


def test_the_query_survives_every_input_and_each_record_is_counted_once(fuzzed):
    _, _, batches, valid, bad = fuzzed
    assert len(batches) >= 4  # several micro-batches, each mixing good and bad records
    assert sum(b.input_rows for b in batches) == len(valid) + len(bad)
    assert sum(b.landing_rows for b in batches) == len(valid)
    assert sum(b.dead_letters for b in batches) == len(bad)
    assert sum(b.duplicates_removed for b in batches) == 0


def test_every_valid_event_lands_exactly_once(spark, fuzzed):
    _, config, _, valid, _ = fuzzed
    landed = spark.read.format("delta").load(config.landing).select("event_id").toPandas()
    assert len(landed) == len(valid)
    assert set(landed.event_id) == {orjson.loads(v)["event_id"] for v in valid}


def test_every_bad_input_is_a_dead_letter_with_a_reason_that_names_its_field(spark, fuzzed):
    settings, config, _, _, bad = fuzzed
    rows = spark.read.format("delta").load(config.bad_rows).select("kafka_key", "error", "raw").collect()
    assert len(rows) == len(bad)
    by_key = {bytes(row.kafka_key).decode(): row for row in rows}
    assert set(by_key) == {f"bad-{i}" for i in range(len(bad))}
    unnamed = Counter()
    for index, given in enumerate(bad):
        row = by_key[f"bad-{index}"]
        assert bytes(row.raw) == given.value  # the original bytes, untouched
        reason = row.error
        if given.field is not None:
            assert given.field in reason, (given, reason)
        elif given.kind == "not_utf8":
            assert reason == "invalid_json: not UTF-8"
        else:
            assert reason.split(":")[0] in ALLOWED.get(given.kind, SHAPELESS), (given.kind, reason)
            unnamed[reason.split(":")[0]] += 1
    assert unnamed  # the shapeless kinds were really generated and judged

    messages = consume_all(settings.kafka_bootstrap_servers, settings.dlq_topic, len(bad))
    assert sorted(m.key().decode() for m in messages) == sorted(by_key)
    assert all(dict(m.headers())["error"].decode() == by_key[m.key().decode()].error
               for m in messages)
