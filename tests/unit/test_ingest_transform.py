"""The ingest's pure transformations on small DataFrames: one reason per broken rule, exact columns.

They run the real pass (spark/ingest/event_pass.py) through `mapInArrow` on an in-process Spark."""

from __future__ import annotations

import copy
from datetime import datetime

import orjson
import pytest
from pyspark.sql import types as T

from config.defaults import IP_KEEP
from spark.ingest.event_pass import network_of
from spark.ingest.transform import (
    HOUR_PARTITION,
    LAKE_COLUMNS,
    flat_events,
    to_bad_rows,
    to_dead_letter_messages,
    to_lake_rows,
)
from tests.helpers import set_field

EVENT = {
    "schema_version": 1,
    "event_id": "0b0c7a52-3c1e-4d7e-9f1a-000000000001",
    "event_type": "add_to_cart",
    "event_ts": "2026-03-02T23:59:58.123Z",
    "user": {"user_id": "u0000001", "session_id": "s-1"},
    "page": {"url": "https://shop.example.com/p/00042?utm_source=x#reviews", "referrer": None},
    "geo": {"country": "DE", "city": "Berlin", "ip": "46.1.2.3"},
    "device": {"type": "mobile", "os": "iOS", "browser": "Safari", "user_agent": "UA"},
    "campaign": None,
    "properties": {"product_id": "P00042", "price": 19.99, "quantity": 1},
}
KAFKA = T.StructType([
    T.StructField("key", T.BinaryType()), T.StructField("value", T.BinaryType()),
    T.StructField("topic", T.StringType()), T.StructField("partition", T.IntegerType()),
    T.StructField("offset", T.LongType()), T.StructField("timestamp", T.TimestampType()),
])


def _variant(**changes) -> bytes:
    event = copy.deepcopy(EVENT)
    for path, value in changes.items():
        set_field(event, path.split("__"), value)
    return orjson.dumps(event)


CASES = {
    "valid": (orjson.dumps(EVENT), None),
    "invalid json": (orjson.dumps(EVENT)[:40], "invalid_json"),
    "empty": (b"", "invalid_json: empty message"),
    "not an object": (b"[1, 2]", "wrong_type"),
    "user is a string": (_variant(user="u0000001"), "wrong_type"),
    "no event_id": (_variant(event_id=KeyError), "missing_field: event_id"),
    "no session_id": (_variant(user__session_id=KeyError), "missing_field: user.session_id"),
    "null url": (_variant(page__url=None), "missing_field: page.url"),
    "bad timestamp": (_variant(event_ts="2026-13-45T25:61:00.000Z"), "bad_timestamp: event_ts"),
    "timestamp without ms": (_variant(event_ts="2026-03-02T10:00:00Z"), "bad_timestamp: event_ts"),
    "unknown type": (_variant(event_type="teleport"), "unknown_event_type: event_type"),
    "not utf-8": (_variant(geo__city="Berlin").replace(b"Berlin", b"Berl\xffin"),
                  "invalid_json: not UTF-8"),
    "bad country": (_variant(geo__country="Germany"), "invalid_value: geo.country"),
    "relative url": (_variant(page__url="/p/1"), "invalid_value: page.url"),
    "version 2": (_variant(schema_version=2), "unsupported_version: schema_version"),
    "user_id too long": (_variant(user__user_id="u" * 65),
                         "invalid_value: user.user_id longer than 64 characters"),
    "empty session_id": (_variant(user__session_id=""), "invalid_value: user.session_id is empty"),
    "user agent too long": (_variant(device__user_agent="é" * 513),  # characters, not bytes
                            "invalid_value: device.user_agent longer than 512 characters"),
    "longest user agent": (_variant(device__user_agent="é" * 512), None),
    "ip not an address": (_variant(geo__ip="10.0.0.300"), "invalid_value: geo.ip"),
    "ipv6 address": (_variant(geo__ip="2001:db8::1"), None),
    "oversized": (_variant(properties={"padding": "x" * 20_000}), "oversized: more than 16384 bytes"),
    # Spark reads any JSON value into a string field as its text; the contract says string.
    "number user_id": (_variant(user__user_id=12345),
                       "wrong_type: user.user_id is not a string"),
    "object browser": (_variant(device__browser={"name": "Safari"}),
                       "wrong_type: device.browser is not a string"),
    "boolean city": (_variant(geo__city=True), "wrong_type: geo.city is not a string"),
    "array os": (_variant(device__os=["iOS"]), "wrong_type: device.os is not a string"),
    "numeric text user_id": (_variant(user__user_id="12345"), None),
    "text that looks like json": (_variant(device__browser="{Safari}", geo__city="true"), None),
    # Every object but properties allows only the keys the contract names.
    "unknown top-level field": (_variant(nickname="x"), "unknown_field: nickname"),
    "unknown nested field": (_variant(geo__zip="10115"), "unknown_field: geo.zip"),
    "unknown null field": (_variant(device__model=None), "unknown_field: device.model"),
    "unknown campaign field": (_variant(campaign={"source": "a", "medium": "b", "name": "c",
                                                  "term": "d"}), "unknown_field: campaign.term"),
    "any properties": (_variant(properties={f"p{i}": i for i in range(40)}), None),
    "quotes and colons in text": (_variant(device__user_agent='a": b": c": d": e": f": g":' * 3),
                                  None),
}


@pytest.fixture(scope="module")
def parsed(spark):
    rows = [(b"u0000001", value, "clickstream", 3, offset, datetime(2026, 3, 3, 0, 0, 5))
            for offset, (value, _) in enumerate(CASES.values())]
    flat = flat_events(spark.createDataFrame(rows, KAFKA))
    return {name: row for name, row in zip(CASES, flat.orderBy("kafka_offset").collect(), strict=True)}


@pytest.mark.parametrize("case", list(CASES))
def test_each_record_gets_the_reason_of_the_rule_it_breaks(parsed, case):
    assert parsed[case]["error"] == CASES[case][1]


def test_valid_event_is_flattened_into_typed_lake_columns(spark, parsed):
    row = parsed["valid"]
    assert row["url_path"] == "https://shop.example.com/p/00042"
    assert row["event_ts"] == datetime(2026, 3, 2, 23, 59, 58, 123000)
    assert str(row["event_date"]) == "2026-03-02"
    assert row["properties"] == {"product_id": "P00042", "price": "19.99", "quantity": "1"}
    assert (row["user_id"], row["session_id"], row["country"], row["device_type"]) == \
        ("u0000001", "s-1", "DE", "mobile")
    assert (row["kafka_partition"], row["kafka_offset"]) == (3, 0)
    assert row["raw"] is None and row["dedup_key"] == EVENT["event_id"]


def test_lake_rows_and_dead_letters_partition_the_input(spark):
    rows = [(b"k", value, "clickstream", 0, offset, datetime(2026, 3, 3))
            for offset, (value, _) in enumerate(CASES.values())]
    flat = flat_events(spark.createDataFrame(rows, KAFKA))
    lake, bad = to_lake_rows(flat), to_bad_rows(flat)
    invalid = {offset for offset, (_, reason) in enumerate(CASES.values()) if reason}
    assert lake.columns == LAKE_COLUMNS
    assert lake.count() == len(CASES) - len(invalid) and bad.count() == len(invalid)
    originals = {offset: value for offset, (value, _) in enumerate(CASES.values())}
    for row in bad.collect():  # the original bytes survive untouched, with their reason
        assert bytes(row["raw"]) == originals[row["kafka_offset"]]
        assert row["error"]
    assert {r["dedup_key"] for r in flat.collect() if r["error"]} == \
        {f"dead-letter:0:{o}" for o in invalid}


def test_dead_letter_messages_keep_bytes_and_carry_reason_and_source(spark, parsed):
    rows = [(b"u1", CASES["bad timestamp"][0], "clickstream", 5, 77, datetime(2026, 3, 3))]
    bad = to_bad_rows(flat_events(spark.createDataFrame(rows, KAFKA)))
    message = to_dead_letter_messages(bad).first()
    headers = {h["key"]: bytes(h["value"]).decode() for h in message["headers"]}
    assert bytes(message["value"]) == CASES["bad timestamp"][0] and bytes(message["key"]) == b"u1"
    assert headers["error"] == "bad_timestamp: event_ts"
    assert (headers["source.topic"], headers["source.partition"], headers["source.offset"]) == \
        ("clickstream", "5", "77")


@pytest.mark.parametrize(("event_ts", "first_day", "reason"), [
    ("2999-01-01T00:00:00.000Z", "2026-01-01",
     "out_of_range: event_ts more than 1 day(s) after the ingest day"),
    ("2025-12-31T23:59:59.999Z", "2026-01-01",
     "out_of_range: event_ts before the first partition 2026-01-01 (CLICKSTREAM_FIRST_DAY)"),
    # Replaying history: once the partitions start early enough, a 2024 event is valid.
    ("2024-03-05T12:00:00.000Z", "2024-01-01", None),
    ("2026-01-01T00:00:00.000Z", "2026-01-01", None),
])
def test_events_outside_the_daily_partitions_are_dead_letters(spark, event_ts, first_day, reason):
    rows = [(b"u1", _variant(event_ts=event_ts), "clickstream", 0, 0, datetime(2026, 3, 3))]
    flat = flat_events(spark.createDataFrame(rows, KAFKA), first_day=first_day)
    (row,) = flat.collect()
    assert row["error"] == reason
    assert to_lake_rows(flat).count() == (1 if reason is None else 0)


@pytest.mark.parametrize(("sent", "stored"), [
    ("46.1.2.3", "46.1.2.0"),
    ("255.255.255.255", "255.255.255.0"),
    ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
    ("2001:DB8::1", "2001:db8::"),
    ("::1", "::"),
    ("not an address", None),
])
def test_ip_addresses_reach_the_lake_as_their_network(sent, stored):
    assert network_of(sent) == stored


def test_the_ip_is_truncated_by_default_and_kept_when_anonymization_is_off(spark):
    kafka = spark.createDataFrame(
        [(b"u0000001", orjson.dumps(EVENT), "clickstream", 0, 0, datetime(2026, 3, 3, 0, 0, 5))], KAFKA)
    assert to_lake_rows(flat_events(kafka)).first()["ip"] == "46.1.2.0"
    assert to_lake_rows(flat_events(kafka, ip_mode=IP_KEEP)).first()["ip"] == "46.1.2.3"
    with pytest.raises(ValueError, match="unknown IP anonymization"):
        flat_events(kafka, ip_mode="hash")


def test_lake_rows_carry_the_utc_hour_only_for_a_landing_partitioned_by_hour(spark):
    kafka = spark.createDataFrame(  # EVENT happened at 23:59:58 UTC
        [(b"u0000001", orjson.dumps(EVENT), "clickstream", 0, 0, datetime(2026, 3, 3))], KAFKA)
    flat = flat_events(kafka)
    assert to_lake_rows(flat).columns == LAKE_COLUMNS
    hourly = to_lake_rows(flat, hourly=True)
    assert hourly.columns == [*LAKE_COLUMNS, HOUR_PARTITION]
    assert hourly.first()[HOUR_PARTITION] == "23"
