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

import orjson
import pytest
from confluent_kafka import Producer

from spark.ingest.config import IngestConfig
from spark.ingest.stream import IngestJob
from tests.fuzz_inputs import ALLOWED, BAD_INPUTS, SEED, SHAPELESS, generate_bad_inputs, valid_events
from tests.helpers import consume_all, create_topics, delete_topics, isolated_topics


@pytest.fixture(scope="module")
def fuzzed(stack, spark, tmp_path_factory):
    settings = isolated_topics(stack)
    create_topics(stack, {settings.topic: 3, settings.dlq_topic: 1})
    valid = valid_events()
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
    config = IngestConfig.from_settings(dataclasses.replace(settings, lake_dir=str(lake)),
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
