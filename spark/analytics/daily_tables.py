"""Thin I/O around the pure transformations: read days from the lake, write whole days back."""

from __future__ import annotations

import math
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from config.defaults import DEFAULT_MAX_EVENTS_PER_SECOND

from .. import retention
from ..delta_lake import read_days, replace_days
from ..enrichment import with_enriched_columns
from ..session import parallelism
from .transform import analytics_rows, deduplicate_day, flag_fast_users

# ~110 MB per zstd file for this schema: large enough for efficient scans, small enough to spread
# a 10M-event day over both cores.
ROWS_PER_FILE = 2_000_000
# Below this a file is too small to be worth a core of its own.
MIN_ROWS_PER_FILE = 250_000


def compact_days(spark: SparkSession, landing: str, raw: str, days: list[str],
                 max_events_per_second: int = DEFAULT_MAX_EVENTS_PER_SECOND) -> dict[str, dict]:
    """Landing -> raw for whole days: deduplicated by event_id, sorted, in well-sized zstd files.

    Days whose compacted landing rows retention may have deleted (spark/retention.py) keep their
    raw rows too: a late event for such a day is added to it, never replaces it.

    One shuffle of the rows: they go to their output file's partition by (event_date, a bucket of
    event_id), which is also what the dedup needs. The event-rate bots come from a second read of
    the same rows, aggregated per user and second; the few users it finds join back by broadcast.
    The file count comes from the landing's row counts and the exact rows per day from the written
    files, both read from Parquet footers.

    Users who sent more than `max_events_per_second` events in one second are flagged as bots here,
    over the whole day (the ingest flags bots by user agent, one micro-batch at a time).
    """
    source = with_enriched_columns(read_days(spark, landing, days))
    expired_before = retention.expired_before(spark, landing)
    expired = [d for d in days if expired_before and d < expired_before]
    if expired:
        kept = with_enriched_columns(read_days(spark, raw, expired))
        # A landing of an older version has an hour column, which the dedup drops.
        source = source.unionByName(kept, allowMissingColumns=True)
    files = files_per_day(rows_per_day(source), parallelism(spark))
    bucketed = (
        source
        .withColumn("_file", F.pmod(F.xxhash64("event_id"), F.lit(files)))
        .repartition(max(1, len(days)) * files, "event_date", "_file")
    )
    deduplicated = flag_fast_users(deduplicate_day(bucketed, bucket="_file"), source,
                                   max_events_per_second)
    written = replace_days(deduplicated.sortWithinPartitions(
        "event_date", "event_ts", "event_id", "event_type"), raw, days)
    # The rows written, and how many of them an IP lookup places in another country than the
    # event declares (a VPN, a proxy, a traveller, or a tracker that guesses its geo).
    compacted = (read_days(spark, raw, days).groupBy("event_date")
                 .agg(F.count(F.lit(1)).alias("rows"),
                      F.count_if(F.col("ip_country") != F.col("country")).alias("mismatches"))
                 .collect())
    rows = {str(r["event_date"]): r["rows"] for r in compacted}
    mismatches = {str(r["event_date"]): r["mismatches"] for r in compacted}
    return {**written, "rows_per_day": {day: rows.get(day, 0) for day in days},
            "ip_country_mismatches": {day: mismatches.get(day, 0) for day in days}}


def rows_per_day(frame: DataFrame) -> dict[str, int]:
    """Rows per event_date of a frame, keyed by ISO day; days without rows are absent."""
    return {str(r["event_date"]): r["count"] for r in frame.groupBy("event_date").count().collect()}


def build_days(spark: SparkSession, raw: str, table: str, days: list[str],
               transform: Callable[[DataFrame], DataFrame], include_bots: bool = False,
               reads: list[str] | None = None) -> dict[str, dict]:
    """raw -> one analytics table for whole days, each replaced atomically; bots' rows left out
    unless `include_bots`. The transformation reads `reads` (default: the days themselves), and
    must return rows of `days` only."""
    rows = analytics_rows(read_days(spark, raw, reads or days), include_bots)
    result = transform(rows).cache()
    try:
        per_day = rows_per_day(result)
        files = files_per_day(per_day, parallelism(spark))
        written = _write(result, table, days, files)
    finally:
        result.unpersist()
    return {**written, "rows_per_day": {day: per_day.get(day, 0) for day in days}}


def files_per_day(rows_per_day: dict[str, int], cores: int) -> int:
    """Each file is one task of the sort-and-write stage, so a day gets at least one file per core
    (while files keep MIN_ROWS_PER_FILE) and whole waves of cores: a day in one task leaves the
    other cores idle."""
    rows = max(rows_per_day.values(), default=0)
    files = max(1, math.ceil(rows / ROWS_PER_FILE), min(cores, rows // MIN_ROWS_PER_FILE))
    return math.ceil(files / cores) * cores if files > cores else files


def _write(frame: DataFrame, table: str, days: list[str], files_per_day: int) -> dict:
    sort_key = "event_ts" if "event_ts" in frame.columns else frame.columns[1]
    shaped = (
        frame.repartition(max(1, len(days)) * files_per_day, "event_date",
                          F.pmod(F.xxhash64(*frame.columns[:3]), F.lit(files_per_day)))
        .sortWithinPartitions("event_date", sort_key, *frame.columns[1:3])
    )
    return replace_days(shaped, table, days)
