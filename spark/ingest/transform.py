"""Pure transformations of the ingest: DataFrame in, DataFrame out, no I/O.

Every Kafka record leaves `flat_events` as exactly one row, with `error` null when the event
honours the contract and a reason ("missing_field: user.session_id", "bad_timestamp: event_ts", ...)
when it does not. Nothing is dropped here: valid rows go to the lake, the others to dead letters.
The per-record work is one Arrow pass in Python workers (event_pass.py); what is left to Spark is
moving columns.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from config.defaults import IP_TRUNCATE

from .config import OVERSIZED_BYTES_KEPT
from .event_pass import HELD_BACK, INPUT_COLUMNS, LAKE_COLUMNS, OUTPUT_SCHEMA, EventPass

__all__ = ["HOUR_PARTITION", "LAKE_COLUMNS", "LANDING_PARTITIONS", "flat_events", "held_back",
           "refilled", "to_bad_rows", "to_dead_letter_messages", "to_lake_rows",
           "with_held_back_payloads"]

LANDING_PARTITIONS = ["event_date"]
# A landing created by an older version is partitioned by this too, and keeps that layout.
HOUR_PARTITION = "event_hour"


def flat_events(kafka_rows: DataFrame, first_day: str | None = None, future_days: int = 1,
                ip_mode: str = IP_TRUNCATE, enrich: bool = True,
                oversized_bytes_kept: int = OVERSIZED_BYTES_KEPT) -> DataFrame:
    """Kafka source rows -> one flat row per record: lake columns, `error`, `dedup_key`, and for
    dead letters the original key and bytes.

    Events dated before `first_day` or more than `future_days` after their ingest day have no
    daily partition to land in, so they are dead letters too (reason `out_of_range: event_ts`).
    `enrich=False` leaves the enriched columns null (`make bench-profile` prices the enrichment).
    Each task keeps the bytes of oversized records up to `oversized_bytes_kept` (see
    `held_back`).
    """
    event_pass = EventPass(first_day=first_day, future_days=future_days, ip_mode=ip_mode,
                           enrich=enrich, oversized_bytes_kept=oversized_bytes_kept)
    sources = kafka_rows.withColumn("ingested_at", F.current_timestamp()).select(*INPUT_COLUMNS)
    return sources.mapInArrow(event_pass, from_arrow_schema(OUTPUT_SCHEMA))


def to_lake_rows(flat: DataFrame, hourly: bool = False) -> DataFrame:
    """Valid events in lake columns (see LAKE_COLUMNS); with `hourly`, also `event_hour` ("00" to
    "23"), the second partition column of a landing created by an older version."""
    hour = [F.date_format("event_ts", "HH").alias(HOUR_PARTITION)] if hourly else []
    return flat.where(F.col("error").isNull()).select(*LAKE_COLUMNS, *hour)


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


def _is_held_back() -> Column:
    return F.col("error").startswith(HELD_BACK) & F.col("raw").isNull()


def held_back(bad_rows: DataFrame) -> DataFrame:
    """Dead letters whose key and bytes the pass held back (oversized records past its
    allowance)."""
    return bad_rows.where(_is_held_back())


def refilled(held: DataFrame, kafka_rows: DataFrame) -> DataFrame:
    """Held-back dead letters with their keys and bytes taken again from `kafka_rows` (the same
    records, read back from the topic by offset)."""
    source = kafka_rows.select(F.col("partition").alias("kafka_partition"),
                               F.col("offset").alias("kafka_offset"),
                               F.col("key").alias("kafka_key"), F.col("value").alias("raw"))
    # The held-back rows are few and narrow: broadcast, so the records stream past them.
    return source.join(F.broadcast(held.drop("kafka_key", "raw")), ["kafka_partition", "kafka_offset"])


def with_held_back_payloads(bad_rows: DataFrame, refilled_rows: DataFrame) -> DataFrame:
    """`bad_rows` with their held-back rows replaced by `refilled_rows` (see `refilled`)."""
    kept = bad_rows.where(~_is_held_back())
    return kept.unionByName(refilled_rows.select(*bad_rows.columns))


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
