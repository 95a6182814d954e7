"""The ingest's decoder and its Arrow pass: derived from the contract, never looser than it, and
reading urls and numbers the way Spark's own functions do (Spark is the oracle here)."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime

import msgspec
import orjson
import pyarrow as pa
import pytest

from contract import event_schema
from contract.decoder import decoder, event_type, java_double, judge, spark_text
from spark.enrichment.referrers import url_parts, utm
from spark.ingest.event_pass import INPUT_COLUMNS, OUTPUT_SCHEMA, Allowance, EventPass
from tests.fuzz_inputs import SEED, generate_bad_inputs, valid_events
from tests.unit.test_ingest_transform import EVENT


def _struct_fields(struct: type) -> dict:
    info = msgspec.inspect.type_info(struct)
    return {field.name: field for field in info.fields}


def test_the_decoder_is_derived_from_the_contract():
    def check(struct: type, node: dict, required_here: bool):
        info = msgspec.inspect.type_info(struct)
        assert info.forbid_unknown_fields
        fields = _struct_fields(struct)
        assert list(fields) == list(node["properties"])  # every field, in the contract's order
        required = set(node.get("required", [])) if required_here else set()
        for name, sub in node["properties"].items():
            nullable = "null" in (sub["type"] if isinstance(sub["type"], list) else [sub["type"]])
            assert fields[name].required == (name in required and not nullable), name
            if "enum" in sub:
                kind = fields[name].type
                literal = next(t for t in getattr(kind, "types", [kind])
                               if isinstance(t, msgspec.inspect.LiteralType))
                assert set(literal.values) == set(sub["enum"])
            if "properties" in sub:
                nested = struct.__annotations__[name]
                nested = next(t for t in typing.get_args(nested) or [nested] if t is not type(None))
                check(nested, sub, name in required)

    check(event_type(), event_schema(), True)


def test_the_decoder_reads_an_event_and_refuses_what_the_contract_refuses():
    event = decoder().decode(orjson.dumps(EVENT))
    assert (event.user.session_id, event.geo.ip, event.campaign) == ("s-1", "46.1.2.3", None)
    for broken in ({**EVENT, "nickname": "x"}, {**EVENT, "event_type": "teleport"},
                   {**EVENT, "schema_version": 2}, {**EVENT, "user": {"user_id": "u"}}):
        with pytest.raises(msgspec.ValidationError):
            decoder().decode(orjson.dumps(broken))


def _batch(values: list[bytes]) -> pa.RecordBatch:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    n = len(values)
    return pa.RecordBatch.from_arrays(
        [pa.array([b"k"] * n, pa.binary()), pa.array(values, pa.binary()),
         pa.array(["clickstream"] * n), pa.array([0] * n, pa.int32()),
         pa.array(range(n), pa.int64()), pa.array([now] * n, pa.timestamp("us", tz="UTC")),
         pa.array([now] * n, pa.timestamp("us", tz="UTC"))], names=INPUT_COLUMNS)


def test_the_fast_path_never_accepts_what_the_contract_refuses():
    """Every record of the fuzz corpus: the pass's verdict is `judge`'s, record by record, and
    the generator's valid events all take the fast path."""
    from spark.ingest import event_pass

    valid = valid_events()
    records = [bad.value for bad in generate_bad_inputs(valid, 3_000, SEED)] + valid
    events, positions = event_pass._decode(records, 16_384)
    fast = set(positions[event_pass._passes_checks(event_pass._fields(events))].tolist())
    for position, record in enumerate(records):
        if position in fast:
            assert judge(record)[0] is None, record[:200]
    assert set(range(3_000, len(records))) <= fast  # the generator's events never need judging

    out = pa.Table.from_batches(EventPass(first_day="2026-01-01").process(_batch(records)),
                                OUTPUT_SCHEMA)
    reasons = dict(zip(out.column("kafka_offset").to_pylist(), out.column("error").to_pylist(),
                       strict=True))
    assert sorted(reasons) == list(range(len(records)))  # one row per record, none lost
    assert all(reasons[p] == judge(r)[0] for p, r in enumerate(records))


def test_oversized_records_keep_their_bytes_only_within_the_tasks_allowance():
    """Past the allowance a record's key and bytes are held back for the writer to read back, so
    the cache holds a bounded number of bytes of them whatever the input."""
    oversized = [json.dumps({**EVENT, "properties": {"padding": "x" * size}}).encode()
                 for size in (20_000, 30_000, 17_000, 20_000)]
    allowance = Allowance(55_000)
    out = pa.Table.from_batches(
        EventPass(first_day="2026-01-01").process(_batch(oversized[:2]), allowance)
        + EventPass(first_day="2026-01-01").process(_batch(oversized[2:]), allowance),
        OUTPUT_SCHEMA)
    assert all(e.startswith("oversized:") for e in out.column("error").to_pylist())
    kept = [value is not None for value in out.column("raw").to_pylist()]
    assert kept == [True, True, False, False]  # 20k + 30k fit; then neither 17k nor 20k does
    assert out.column("raw").to_pylist()[:2] == oversized[:2]
    assert out.column("kafka_key").to_pylist() == [b"k", b"k", None, None]


@pytest.mark.parametrize("url", [
    "https://www.google.com/", "https://my_host.com/x", "https://a.b.c:8080/?utm_source=x&utm_source=y",
    "https://a.com/?x=1|2&utm_source=e", "not a url", "//host.com/p?utm_source=s", "https://[::1]/",
    "https://user@Host.COM:80/p?utm_source=%41", "https://1.2.3.4/", "https://a..b/", "https://-a.com/",
    "https://a.com./", "https://ä.com/", "https://a.com/ä?utm_source=ü", "mailto:x@y.com",
    "https://a.com/%zz", "https://a.com/p?utm_source=a#frag", "https://a.com:abc/", "https://a.1com/",
    "https://a.com/?utm_source", "http://example.com?utm_source=s", "https://a.com/#x#y",
    "https://a.com/p[1]", "", "https://x.com/?a=1&utm_source=b&utm_source=c", "ftp://files.example.org/f",
])
def test_urls_are_read_as_spark_reads_them(spark, url):
    oracle = spark.sql("select try_parse_url(:u, 'HOST') as host, "
                       "try_parse_url(:u, 'QUERY', 'utm_source') as source", args={"u": url}).first()
    assert (url_parts(url)[0], utm(url, "utm_source")) == (oracle.host, oracle.source)


def test_property_values_are_the_text_spark_reads(spark):
    values = [1.5, 1e7, 0.0001, 123456789.25, -0.0, 0.001, 1e-3, 9999999.0, 1e22, 2.5e-5, 12,
              -7, 12345678901234567890, True, False, None, "text", [1, 2.0, "a"], {"x": {"y": 1}}]
    document = json.dumps({"properties": {f"p{i}": v for i, v in enumerate(values)}})
    (row,) = spark.sql("select from_json(:d, 'properties map<string, string>') as e",
                       args={"d": document}).collect()
    assert [spark_text(v) for v in values] == [row.e.properties[f"p{i}"] for i in range(len(values))]
    assert java_double(1e7) == "1.0E7"

