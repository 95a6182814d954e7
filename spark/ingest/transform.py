"""Pure transformations of the ingest: DataFrame in, DataFrame out, no I/O.

Every Kafka record leaves `parse_events` as exactly one row, with `error` null when the event
honours the contract and a reason ("missing_field: user.session_id", "bad_timestamp: event_ts", ...) when
it does not. Nothing is dropped here: valid rows go to the lake, the others to dead letters.
"""

from __future__ import annotations

import re
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from contract import max_event_bytes
from contract.spark import CORRUPT_RECORD, closed_objects, field_rules, nullable_fields, spark_schema

from .. import enrichment
from .config import IP_MODES, IP_TRUNCATE

SENT = "_sent_json"  # parse_events' variant of a suspect record, for contract_violation
UNKNOWN = "_unknown_field"  # parse_events' first field the contract does not know, if any

LAKE_COLUMNS = [
    "event_id", "event_type", "event_ts", "event_date", "event_hour", "user_id", "session_id",
    "url", "url_path", "referrer", "country", "city", "ip", "device_type", "os", "browser",
    "user_agent", "campaign_source", "campaign_medium", "campaign_name", "properties",
    "schema_version", "kafka_partition", "kafka_offset", "kafka_timestamp", "ingested_at",
    *enrichment.ENRICHED_COLUMNS,
]


# Lake columns read straight from a field of the parsed event.
EVENT_FIELDS = {
    "event_id": "event_id", "event_type": "event_type",
    "user_id": "user.user_id", "session_id": "user.session_id", "url": "page.url",
    "referrer": "page.referrer", "country": "geo.country", "city": "geo.city", "ip": "geo.ip",
    "device_type": "device.type", "os": "device.os", "browser": "device.browser",
    "user_agent": "device.user_agent", "campaign_source": "campaign.source",
    "campaign_medium": "campaign.medium", "campaign_name": "campaign.name",
    "properties": "properties",
}


def parse_events(kafka_rows: DataFrame, max_bytes: int | None = None, first_day: str | None = None,
                 future_days: int = 1) -> DataFrame:
    """Kafka source rows -> parsed event struct, Kafka coordinates, `ingested_at` and `error`.

    Events dated before `first_day` or more than `future_days` after their ingest day have no
    daily partition to land in, so they are dead letters too (reason `out_of_range: event_ts`).
    """
    raw = F.col("value").cast("string")
    parsed = kafka_rows.select(
        "key",
        "value",
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.from_json(raw, spark_schema(), {"columnNameOfCorruptRecord": CORRUPT_RECORD}).alias("event"),
        F.current_timestamp().alias("ingested_at"),
    )
    # The contract's pattern pins the exact ISO-8601 form (checked in contract_violation), so
    # Spark's built-in string-to-timestamp cast can read it: a formatter-based parse cost ~8 %
    # of the ingest's CPU. try_cast: an impossible date (Feb 30) becomes null -> bad_timestamp.
    event_ts = F.col("event.event_ts").try_cast("timestamp")
    # The record's own JSON as a variant, parsed a second time only when a free-text field holds
    # what could be a non-string value's text (see _not_a_json_string). One column, so the parse
    # runs once per suspect row, never once per check or for every row.
    suspect = reduce(lambda a, b: a | b, [_suspect(_field(path)) for path in _text_fields()])
    sent = F.when(suspect, F.expr("try_parse_json(cast(value as string))"))
    return (
        parsed.withColumn("event_ts", event_ts).withColumn(SENT, sent)
        .withColumn(UNKNOWN, F.when(_may_have_unknown_fields(), _first_unknown_field()))
        .withColumn("error", F.coalesce(contract_violation(max_bytes or max_event_bytes()),
                                        date_out_of_range(first_day, future_days)))
        .drop(SENT, UNKNOWN)
        .withColumn("dedup_key", F.when(F.col("error").isNull(), F.col("event.event_id")).otherwise(
            F.concat_ws(":", F.lit("dead-letter"), "kafka_partition", "kafka_offset")))
    )


def contract_violation(max_bytes: int) -> Column:
    """The first rule an event breaks, as a reason string; null for a valid event."""
    value, event = F.col("value"), F.col("event")
    rules = field_rules()
    checks: list[tuple[Column, Column | str]] = [
        (value.isNull() | (F.octet_length(value) == 0), "invalid_json: empty message"),
        (F.octet_length(value) > max_bytes, f"oversized: more than {max_bytes} bytes"),
        # JSON is UTF-8. Spark would read stray bytes into a string field as they are, so a record
        # with invalid bytes could otherwise pass and carry them into the lake and the indices.
        (~F.expr("is_valid_utf8(cast(value as string))"), "invalid_json: not UTF-8"),
        (event[CORRUPT_RECORD].isNotNull(), F.when(
            F.expr("try_parse_json(cast(value as string))").isNull(), F.lit("invalid_json")
        ).otherwise(F.lit("wrong_type"))),
    ]
    checks += [(_field(r.path).isNull(), f"missing_field: {r.path}") for r in rules if r.required]
    checks += [(_not_a_json_string(path), f"wrong_type: {path} is not a string")
               for path in _text_fields()]
    checks.append((F.col(UNKNOWN).isNotNull(), F.concat(F.lit("unknown_field: "), F.col(UNKNOWN))))
    for rule in rules:
        column = _field(rule.path)
        if rule.const is not None:
            checks.append((column != F.lit(rule.const), f"unsupported_version: {rule.path}"))
        if rule.enum is not None:
            reason = ("unknown_event_type: event_type" if rule.path == "event_type"
                      else f"invalid_value: {rule.path}")
            checks.append((~column.isin(*rule.enum), reason))
        if rule.path == "event_ts":
            checks.append((~column.rlike(rule.pattern) | F.col("event_ts").isNull(),
                           "bad_timestamp: event_ts"))
        elif rule.pattern is not None:
            checks.append((~column.rlike(rule.pattern), f"invalid_value: {rule.path}"))
        if rule.min_length is not None:
            checks.append((F.char_length(column) < rule.min_length, f"invalid_value: {rule.path} "
                           + ("is empty" if rule.min_length == 1
                              else f"shorter than {rule.min_length} characters")))
        if rule.max_length is not None:
            checks.append((F.char_length(column) > rule.max_length,
                           f"invalid_value: {rule.path} longer than {rule.max_length} characters"))
    # One CASE WHEN with a branch per rule, in order: the first rule broken wins. (Nesting one
    # CASE WHEN per rule built a plan ~35 levels deep that every micro-batch analysed again.)
    (condition, reason), *rest = checks
    first = F.when(condition, reason if isinstance(reason, Column) else F.lit(reason))
    for condition, reason in rest:
        first = first.when(condition, reason if isinstance(reason, Column) else F.lit(reason))
    return first.otherwise(F.lit(None).cast("string"))


def _text_fields() -> list[str]:
    """String fields with neither a pattern nor an enum: nothing else keeps a number, boolean,
    object or array out of them."""
    return [r.path for r in field_rules() if r.is_string and r.pattern is None and r.enum is None]


def _suspect(column: Column) -> Column:
    """Text that a non-string JSON value would have become: number characters alone, true,
    false, or text opening with { or [. Character tests only, the first character before the rest
    (a cast to double as the number test threw and caught an exception per field and row)."""
    first = F.substring(column, 1, 1)
    return (first.isin(*"-0123456789tf{[")
            & ((F.translate(column, "0123456789.eE+-", "") == "") | column.isin("true", "false")
               | first.isin("{", "[")))


def _not_a_json_string(path: str) -> Column:
    """True when the field held a number, boolean, object or array, which Spark's parser reads
    into a string field as its JSON text; decided from the record's own JSON (`SENT`), which only
    a suspect record has. (A missing field has no type here; a null one is VOID.)"""
    sent_as = F.expr(f"schema_of_variant(variant_get({SENT}, '$.{path}'))")
    return F.col(SENT).isNotNull() & ~sent_as.isin("STRING", "VOID")


def _may_have_unknown_fields() -> Column:
    """True when the record may hold a key the contract does not know: it has more key-colon pairs
    than it has known fields with a value, explicit nulls of the nullable ones, and properties. A
    record with an unknown key always has more, so only such records (and a few others, such as
    text holding an escaped quote and a colon) pay for reading every object's keys."""
    raw = F.col("value").cast("string")
    rules = field_rules()
    with_value = reduce(lambda a, b: a + b, [_field(r.path).isNotNull().cast("int") for r in rules])
    nullable = nullable_fields()
    names = "|".join(re.escape(path.rsplit(".", 1)[-1]) for path in nullable)
    # At most one explicit null per nullable field that parsed as null.
    nulls = F.least(F.regexp_count(raw, F.lit(rf'"({names})"\s*:\s*null')),
                    reduce(lambda a, b: a + b, [_field(p).isNull().cast("int") for p in nullable]))
    pairs = F.regexp_count(raw, F.lit(r'"\s*:'))
    return pairs > with_value + nulls + F.coalesce(F.size("event.properties"), F.lit(0))


def _first_unknown_field() -> Column:
    """The dotted path of the first key the contract does not allow, from the record's own JSON."""
    raw = F.col("value").cast("string")
    found = []
    for path, allowed in closed_objects().items():
        text = F.get_json_object(raw, f"$.{path}") if path else raw
        extra = F.array_except(F.json_object_keys(text), F.array(*[F.lit(k) for k in allowed]))
        found.append(F.concat(F.lit(f"{path}." if path else ""), F.try_element_at(extra, F.lit(1))))
    return F.coalesce(*found)


def date_out_of_range(first_day: str | None, future_days: int) -> Column:
    """A reason when a (contract-valid) event's day is outside the daily partitions, else null."""
    day = F.to_date("event_ts")
    too_late = day > F.date_add(F.to_date("ingested_at"), future_days)
    reason = F.when(too_late, F.lit(f"out_of_range: event_ts more than {future_days} day(s) "
                                    f"after the ingest day"))
    if first_day:
        reason = F.when(day < F.lit(first_day).cast("date"),
                        F.lit(f"out_of_range: event_ts before the first partition {first_day} "
                              f"(CLICKSTREAM_FIRST_DAY)")).otherwise(reason)
    return reason


def flatten(events: DataFrame, ip_mode: str = IP_TRUNCATE, enrich: bool = True) -> DataFrame:
    """Parsed events -> typed lake columns, plus `error` and, for dead letters only, the original
    Kafka key and bytes. One flat, narrow row per record: cheap to cache within a micro-batch.
    `enrich=False` leaves the enriched columns null (`make bench-profile` prices the enrichment)."""
    if ip_mode not in IP_MODES:
        raise ValueError(f"unknown IP anonymization {ip_mode!r}: use one of {', '.join(IP_MODES)}")
    invalid = F.col("error").isNotNull()
    ip, url = F.col("event.geo.ip"), F.col("event.page.url")
    # Campaign fields as sent, else from the landing url's UTM parameters.
    campaign = {name: enrichment.campaign(F.col(f"event.{EVENT_FIELDS[name]}"), url, name)
                for name in ("campaign_source", "campaign_medium", "campaign_name")}
    derived = {
        "event_date": F.to_date("event_ts"),
        "event_hour": F.date_format("event_ts", "HH"),
        "url_path": url_path(F.col("event.page.url")),
        "schema_version": F.col("event.schema_version").cast("int"),
        "ip": truncate_ip(ip) if ip_mode == IP_TRUNCATE else ip,
        **campaign,
        # Enriched before the address is truncated: the lookup needs the host. Only valid events
        # reach the lookups: ua-parser's rules backtrack on long agents (3,000 characters took
        # 2.8 s), and a dead letter's agent is never read, so a bad record must not cost that.
        **(enrichment.columns(F.when(~invalid, F.col("event.device.user_agent")),
                              F.when(~invalid, ip), url, F.col("event.page.referrer"),
                              campaign["campaign_medium"]) if enrich else enrichment.null_columns()),
    }
    lake_columns = [
        derived[name].alias(name) if name in derived
        else F.col(f"event.{EVENT_FIELDS[name]}").alias(name) if name in EVENT_FIELDS
        else F.col(name)  # event_ts and the Kafka coordinates are columns already
        for name in LAKE_COLUMNS
    ]
    return events.select(
        *lake_columns,
        "kafka_topic",
        "error",
        "dedup_key",
        F.when(invalid, F.col("key")).alias("kafka_key"),
        F.when(invalid, F.col("value")).alias("raw"),
    )


def to_lake_rows(flat: DataFrame) -> DataFrame:
    """Valid events in lake columns (see LAKE_COLUMNS)."""
    return flat.where(F.col("error").isNull()).select(*LAKE_COLUMNS)


def truncate_ip(ip: Column) -> Column:
    """The network an address belongs to, not the host: IPv4 keeps its /24 (`46.1.2.0`), IPv6
    its /48 (`2001:db8:85a3::`). Enough for geography and abuse ranges, no longer personal data
    about one device. Anything else (a malformed value) becomes null rather than pass through."""
    v4 = F.regexp_extract(ip, r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$", 1)
    v6 = F.regexp_extract(F.lower(ip), r"^([0-9a-f]{0,4}(:[0-9a-f]{1,4}){0,2})", 1)
    return (F.when(v4 != "", F.concat(v4, F.lit(".0")))
            .when(ip.contains(":"), F.concat(v6, F.lit("::")))
            .otherwise(F.lit(None).cast("string")))


def url_path(url: Column) -> Column:
    """The url without its query string and fragment."""
    return F.regexp_replace(url, r"[?#].*$", "")


def to_bad_rows(flat: DataFrame) -> DataFrame:
    """Dead letters as a table: the original bytes, the reason and where they came from."""
    return flat.where(F.col("error").isNotNull()).select(
        "error",
        "kafka_key",
        "raw",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "ingested_at",
        F.to_date("ingested_at").alias("ingest_date"),
    )


def to_dead_letter_messages(bad_rows: DataFrame) -> DataFrame:
    """Dead letters for the Kafka sink: original key and bytes, reason and source in headers."""
    header_values = {
        "error": F.col("error"),
        "source.topic": F.col("kafka_topic"),
        "source.partition": F.col("kafka_partition").cast("string"),
        "source.offset": F.col("kafka_offset").cast("string"),
        "source.timestamp": F.date_format("kafka_timestamp", "yyyy-MM-dd'T'HH:mm:ss.SSSX"),
        "ingested_at": F.date_format("ingested_at", "yyyy-MM-dd'T'HH:mm:ss.SSSX"),
    }
    headers = F.array(*[
        F.struct(F.lit(name).alias("key"), value.cast("binary").alias("value"))
        for name, value in header_values.items()
    ])
    return bad_rows.select(F.col("kafka_key").alias("key"), F.col("raw").alias("value"),
                           headers.alias("headers"))


def _field(path: str) -> Column:
    return reduce(lambda col, name: col[name], path.split("."), F.col("event"))
