"""The ingest's one pass over each Arrow batch of Kafka records: parse, validate, flatten, enrich.

Spark hands a Python worker the micro-batch's records an Arrow batch at a time (`mapInArrow`), and
gets back one flat row per record: typed lake columns for a valid event, and `error`, key and
original bytes for a dead letter. Per record the pass pays one strict msgspec decode (types,
required fields, enums, unknown fields, UTF-8); patterns, lengths and timestamps are checked a
whole column at a time with Arrow's RE2 kernels; lookups run once per distinct value. A record the
fast path refuses is judged again, alone, by `contract.decoder.judge`, which names the first rule
it breaks in the order the ingest has always used.

Output rows carry LAKE_COLUMNS, then `kafka_topic`, `error`, `dedup_key`, `kafka_key` and `raw`.
Oversized records keep their key and bytes while a task's allowance lasts (`OVERSIZED_BYTES_KEPT`);
past it they are held back (null): up to Kafka's 1 MB each, a few hundred of them filled the
micro-batch's cache past the server's heap. The writer reads held-back records back from the topic
by offset (`HELD_BACK`, `transform.with_held_back_payloads`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from functools import cache, lru_cache
from operator import attrgetter

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from config.defaults import IP_MODES, IP_TRUNCATE
from contract import max_event_bytes
from contract.decoder import decoder, event_type, judge, re2_pattern, rules, spark_text

from .. import enrichment
from ..enrichment.referrers import UTM_PARAMETERS, classify, host, utm
from .config import OVERSIZED_BYTES_KEPT

# The Kafka source's columns the pass reads, with the micro-batch's ingest time.
INPUT_COLUMNS = ["key", "value", "topic", "partition", "offset", "timestamp", "ingested_at"]
TIMESTAMP = pa.timestamp("us", tz="UTC")
_TEXT = pa.string()
LAKE_TYPES: dict[str, pa.DataType] = {
    "event_id": _TEXT, "event_type": _TEXT, "event_ts": TIMESTAMP, "event_date": pa.date32(),
    "user_id": _TEXT, "session_id": _TEXT, "url": _TEXT, "url_path": _TEXT,
    "referrer": _TEXT, "country": _TEXT, "city": _TEXT, "ip": _TEXT, "device_type": _TEXT,
    "os": _TEXT, "browser": _TEXT, "user_agent": _TEXT, "campaign_source": _TEXT,
    "campaign_medium": _TEXT, "campaign_name": _TEXT, "properties": pa.map_(_TEXT, _TEXT),
    "schema_version": pa.int32(), "kafka_partition": pa.int32(), "kafka_offset": pa.int64(),
    "kafka_timestamp": TIMESTAMP, "ingested_at": TIMESTAMP,
    **{name: pa.bool_() if name == "is_bot" else _TEXT for name in enrichment.ENRICHED_COLUMNS},
}
LAKE_COLUMNS = list(LAKE_TYPES)
OUTPUT_SCHEMA = pa.schema([*LAKE_TYPES.items(), ("kafka_topic", _TEXT), ("error", _TEXT),
                           ("dedup_key", _TEXT), ("kafka_key", pa.binary()), ("raw", pa.binary())])

# Lake columns read straight from a field of the event.
EVENT_FIELDS = {
    "event_id": "event_id", "event_type": "event_type",
    "user_id": "user.user_id", "session_id": "user.session_id", "url": "page.url",
    "referrer": "page.referrer", "country": "geo.country", "city": "geo.city", "ip": "geo.ip",
    "device_type": "device.type", "os": "device.os", "browser": "device.browser",
    "user_agent": "device.user_agent", "campaign_source": "campaign.source",
    "campaign_medium": "campaign.medium", "campaign_name": "campaign.name",
}
EVENT_TIME = "event_ts parsed"  # the field holding event_ts as a timestamp, beside its text
# Dead letters of this reason leave the pass without their key and bytes once a task has kept its
# allowance of them (see the module).
HELD_BACK = "oversized:"
_IPV4_NETWORK = re.compile(r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$", re.ASCII)
_IPV6_NETWORK = re.compile(r"^([0-9a-f]{0,4}(:[0-9a-f]{1,4}){0,2})")


class EventPass:
    """A picklable function from Arrow batches of Kafka records to Arrow batches of flat rows:
    what `DataFrame.mapInArrow` runs in each Python worker."""

    def __init__(self, first_day: str | None = None, future_days: int = 1,
                 ip_mode: str = IP_TRUNCATE, max_bytes: int | None = None, enrich: bool = True,
                 oversized_bytes_kept: int = OVERSIZED_BYTES_KEPT):
        if ip_mode not in IP_MODES:
            raise ValueError(f"unknown IP anonymization {ip_mode!r}: use one of {', '.join(IP_MODES)}")
        self.first_day = first_day
        self.future_days = future_days
        self.ip_mode = ip_mode
        self.max_bytes = max_bytes or max_event_bytes()
        self.enrich = enrich
        self.oversized_bytes_kept = oversized_bytes_kept

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        allowance = Allowance(self.oversized_bytes_kept)  # one task's: its Kafka partition's
        for batch in batches:
            yield from self.process(batch, allowance)

    def process(self, batch: pa.RecordBatch, allowance: Allowance | None = None
                ) -> list[pa.RecordBatch]:
        """One batch of Kafka records -> its valid events and its dead letters, as flat rows.
        Oversized dead letters keep their bytes while `allowance` lasts (none without one)."""
        values = batch.column("value").to_pylist()
        events, positions = _decode(values, self.max_bytes)
        fields = _fields(events)
        passed = _passes_checks(fields)
        reasons, late_positions, late_events = _judge_the_rest(
            values, set(positions[passed].tolist()), self.max_bytes)
        fields = {path: column.filter(passed) for path, column in fields.items()}
        kept = positions[passed]
        if late_events:
            late = _fields(late_events)
            fields = {path: pa.concat_arrays([fields[path], late[path]]) for path in fields}
            kept = np.concatenate([kept, np.asarray(late_positions, dtype=np.int64)])
        valid = batch.take(pa.array(kept, pa.int64()))
        out_of_range = self._out_of_range(fields[EVENT_TIME], valid.column("ingested_at"))
        if out_of_range:
            in_range = np.ones(len(kept), dtype=bool)
            for index, reason in out_of_range.items():
                reasons[int(kept[index])] = reason
                in_range[index] = False
            fields = {path: column.filter(pa.array(in_range)) for path, column in fields.items()}
            valid = valid.filter(pa.array(in_range))
        out = [self._lake_rows(valid, fields)] if valid.num_rows else []
        if reasons:
            out.append(_dead_letters(batch, reasons, allowance or Allowance(0)))
        return out

    def _out_of_range(self, event_ts: pa.Array, ingested_at: pa.Array) -> dict[int, str]:
        """Valid events with no daily partition to land in, by index, with their reason."""
        if len(event_ts) == 0:
            return {}
        day = pc.cast(event_ts, pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
        ingest_day = pc.cast(ingested_at, pa.date32()).to_numpy(zero_copy_only=False).astype(
            "datetime64[D]")
        reasons: dict[int, str] = {}
        for index in np.flatnonzero(day > ingest_day + np.timedelta64(self.future_days, "D")):
            reasons[int(index)] = (f"out_of_range: event_ts more than {self.future_days} day(s) "
                                   f"after the ingest day")
        if self.first_day:
            first = np.datetime64(date.fromisoformat(self.first_day), "D")
            for index in np.flatnonzero(day < first):
                reasons[int(index)] = (f"out_of_range: event_ts before the first partition "
                                       f"{self.first_day} (CLICKSTREAM_FIRST_DAY)")
        return reasons

    def _lake_rows(self, valid: pa.RecordBatch, fields: dict[str, pa.Array]) -> pa.RecordBatch:
        text = {name: fields[path] for name, path in EVENT_FIELDS.items()}
        timestamps = fields[EVENT_TIME]
        urls = text["url"].to_pylist()
        for name, parameter in UTM_PARAMETERS.items():  # as sent, else from the url's UTM parameter
            sent = text[name].to_pylist()
            text[name] = pa.array([value if value is not None else utm(url, parameter)
                                   for value, url in zip(sent, urls, strict=True)], _TEXT)
        sent_ips = text["ip"].to_pylist()
        if self.ip_mode == IP_TRUNCATE:
            text["ip"] = _per_distinct(sent_ips, network_of)
        columns = {
            **text,
            "event_ts": timestamps,
            "event_date": pc.cast(timestamps, pa.date32()),
            "url_path": pc.replace_substring_regex(text["url"], r"[?#].*", ""),
            "properties": fields["properties"],
            "schema_version": fields["schema_version"],
            "kafka_partition": valid.column("partition"),
            "kafka_offset": valid.column("offset"),
            "kafka_timestamp": valid.column("timestamp"),
            "ingested_at": valid.column("ingested_at"),
        }
        if self.enrich:
            # Before the address is truncated: the lookup needs the host.
            columns.update(_enriched(text["user_agent"].to_pylist(), sent_ips,
                                     text["referrer"].to_pylist(), urls,
                                     text["campaign_medium"].to_pylist()))
        n = valid.num_rows
        arrays = [columns[name] if name in columns else pa.nulls(n, LAKE_TYPES[name])
                  for name in LAKE_COLUMNS]
        arrays += [valid.column("topic"), pa.nulls(n, _TEXT), fields["event_id"],
                   pa.nulls(n, pa.binary()), pa.nulls(n, pa.binary())]
        return pa.RecordBatch.from_arrays(arrays, schema=OUTPUT_SCHEMA)


def _decode(values: list, max_bytes: int) -> tuple[list, np.ndarray]:
    """The records msgspec reads as events, and their positions in the batch."""
    decode = decoder().decode
    events, positions = [], []
    for position, value in enumerate(values):
        if value is None or len(value) > max_bytes:
            continue
        try:
            events.append(decode(value))
        except msgspec.MsgspecError:
            continue
        positions.append(position)
    return events, np.asarray(positions, dtype=np.int64)


@cache
def _leaf_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The event's leaf fields: those under required objects only, and those under an optional
    object (read through a None check)."""
    objects = {r.path for r in rules() if any(o.path.startswith(r.path + ".") for o in rules())}
    leaves = [r.path for r in rules() if r.path not in objects and r.path != "properties"]
    optional = {r.path for r in rules() if r.path in objects and not r.required}
    under_optional = tuple(p for p in leaves if any(p.startswith(o + ".") for o in optional))
    return tuple(p for p in leaves if p not in under_optional), under_optional


def _fields(events: list) -> dict[str, pa.Array]:
    """Every leaf field of the events as an Arrow column, `event_ts` parsed beside its text (null
    where it names no real time), and `properties` as a map of text."""
    required, optional = _leaf_paths()
    rows = list(map(attrgetter(*required), events))
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(required)
    fields: dict[str, pa.Array] = {
        path: pa.array(column, pa.int32() if path == "schema_version" else _TEXT)
        for path, column in zip(required, columns, strict=True)}
    for path in optional:
        parent, _, leaf = path.rpartition(".")
        get = attrgetter(parent)
        fields[path] = pa.array([None if (o := get(e)) is None else getattr(o, leaf) for e in events],
                                _TEXT)
    fields[EVENT_TIME] = _timestamps(fields["event_ts"])
    fields["properties"] = _property_maps([event.properties for event in events])
    return fields


def _timestamps(texts: pa.Array) -> pa.Array:
    """ISO-8601 texts -> UTC timestamps; null for a text that names no real time (30 February)
    or is not a timestamp at all."""
    try:
        return pc.cast(texts, TIMESTAMP)
    except pa.ArrowInvalid:
        pass
    pattern = next(r.pattern for r in rules() if r.path == "event_ts")
    plausible = pc.fill_null(pc.match_substring_regex(texts, re2_pattern(pattern)), False)
    texts = pc.if_else(plausible, texts, pa.scalar(None, _TEXT))
    try:
        return pc.cast(texts, TIMESTAMP)
    except pa.ArrowInvalid:  # a day the calendar lacks: each text alone, for this batch only
        return pa.array([_timestamp(t) for t in texts.to_pylist()], TIMESTAMP)


def _timestamp(text: str | None):
    if text is None:
        return None
    try:
        return pc.cast(pa.scalar(text[:23] + "Z"), TIMESTAMP).as_py()
    except pa.ArrowInvalid:
        return None


def _property_maps(all_properties: list) -> pa.Array:
    """Each event's free-form properties as a map of text, built from flat key and value lists."""
    keys: list[str] = []
    values: list = []
    offsets = [0]
    absent = []
    for properties in all_properties:
        if properties:
            keys.extend(properties)
            values.extend(properties.values())
        offsets.append(len(keys))
        absent.append(properties is None)
    texts = [value if value is None or value.__class__ is str else spark_text(value) for value in values]
    return pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys, _TEXT),
                                   pa.array(texts, _TEXT), type=LAKE_TYPES["properties"],
                                   mask=pa.array(absent, pa.bool_()) if any(absent) else None)


def _passes_checks(fields: dict[str, pa.Array]) -> np.ndarray:
    """Which decoded events keep every pattern, length and timestamp rule, column by column."""
    passed = np.ones(len(fields["event_id"]), dtype=bool)
    if not len(passed):
        return passed
    for rule in rules():
        column = fields.get(rule.path)
        if column is None or pa.types.is_integer(column.type):
            continue
        checks = []
        if rule.pattern is not None:
            checks.append(pc.match_substring_regex(column, re2_pattern(rule.pattern)))
        if rule.min_length is not None or rule.max_length is not None:
            length = pc.utf8_length(column)
            if rule.min_length is not None:
                checks.append(pc.greater_equal(length, rule.min_length))
            if rule.max_length is not None:
                checks.append(pc.less_equal(length, rule.max_length))
        for check in checks:  # a null is an optional field left out: nothing to check
            passed &= pc.fill_null(check, True).to_numpy(zero_copy_only=False)
    passed &= pc.is_valid(fields[EVENT_TIME]).to_numpy(zero_copy_only=False)
    return passed


def _judge_the_rest(values: list, accepted: set[int], max_bytes: int
                    ) -> tuple[dict[int, str], list[int], list]:
    """Every record the fast path did not accept, judged alone: the reasons of the bad ones by
    position, and the positions and events of those the contract allows after all (a Java-style
    line end before `$`, a big integer or an object among the properties)."""
    reasons: dict[int, str] = {}
    late_positions, late_events = [], []
    for position, value in enumerate(values):
        if position in accepted:
            continue
        reason, document = judge(value, max_bytes)
        if reason is None:
            try:
                late_events.append(msgspec.convert(document, event_type()))
                late_positions.append(position)
                continue
            except msgspec.ValidationError as error:  # judge and the Structs disagree: say so
                reason = f"invalid_value: {error}"
        reasons[position] = reason
    return reasons, late_positions, late_events


class Allowance:
    """Bytes of oversized records that may still keep their payload."""

    def __init__(self, remaining: int):
        self.remaining = remaining

    def take(self, size: int) -> bool:
        if size > self.remaining:
            return False
        self.remaining -= size
        return True


def _dead_letters(batch: pa.RecordBatch, reasons: dict[int, str],
                  allowance: Allowance) -> pa.RecordBatch:
    positions = sorted(reasons)
    bad = batch.take(pa.array(positions, pa.int64()))
    n = len(positions)
    partitions, offsets = bad.column("partition").to_pylist(), bad.column("offset").to_pylist()
    columns = {"kafka_partition": bad.column("partition"), "kafka_offset": bad.column("offset"),
               "kafka_timestamp": bad.column("timestamp"), "ingested_at": bad.column("ingested_at")}
    arrays = [columns[name] if name in columns else pa.nulls(n, LAKE_TYPES[name])
              for name in LAKE_COLUMNS]
    errors = [reasons[p] for p in positions]
    sizes = pc.binary_length(bad.column("value")).to_pylist()
    held_back = pa.array([error.startswith(HELD_BACK) and not allowance.take(size or 0)
                          for error, size in zip(errors, sizes, strict=True)])
    arrays += [bad.column("topic"), pa.array(errors, _TEXT),
               pa.array([f"dead-letter:{p}:{o}" for p, o in zip(partitions, offsets, strict=True)],
                        _TEXT),
               *(pc.if_else(held_back, pa.scalar(None, pa.binary()), bad.column(name))
                 for name in ("key", "value"))]
    return pa.RecordBatch.from_arrays(arrays, schema=OUTPUT_SCHEMA)


def _factorized(values: list) -> tuple[pa.Array, list]:
    """Each value's index into the distinct values, and the distinct values in first-seen order."""
    index: dict = {}
    codes = [index.setdefault(value, len(index)) for value in values]
    return pa.array(codes, pa.int32()), list(index)


def _per_distinct(values: list, lookup, kind: pa.DataType = _TEXT) -> pa.Array:
    """`lookup` of every value, called once per distinct value."""
    codes, distinct = _factorized(values)
    return pa.array([lookup(value) for value in distinct], kind).take(codes)


def _enriched(agents: list, ips: list, referrers: list, urls: list, media: list) -> dict[str, pa.Array]:
    """The enriched lake columns: user agent and crawler flag, IP country, referrer class."""
    codes, distinct = _factorized(agents)
    described = [enrichment.describe(agent) for agent in distinct]
    columns = {name: pa.array([d[i] for d in described], enrichment.ARROW_TYPES[name]).take(codes)
               for i, name in enumerate(enrichment.UserAgent._fields)}
    columns["bot_reason"] = pc.if_else(columns["is_bot"], enrichment.BOT_BY_USER_AGENT,
                                       pa.scalar(None, _TEXT))
    columns["ip_country"] = _per_distinct(ips, enrichment.country_of)
    keys = list(zip(referrers, map(host, urls), media, strict=True))
    columns["referrer_class"] = _per_distinct(keys, lambda key: classify(*key))
    return columns


@lru_cache(maxsize=262_144)
def network_of(ip: str | None) -> str | None:
    """The network an address belongs to, not the host: IPv4 keeps its /24 (`46.1.2.0`), IPv6
    its /48 (`2001:db8:85a3::`). Enough for geography and abuse ranges, no longer personal data
    about one device. Anything else (a malformed value) becomes None rather than pass through."""
    if ip is None:
        return None
    v4 = _IPV4_NETWORK.search(ip)
    if v4:
        return v4.group(1) + ".0"
    if ":" in ip:
        return _IPV6_NETWORK.search(ip.lower()).group(1) + "::"
    return None

