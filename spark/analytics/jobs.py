"""Thin I/O around the pure transformations: read days from the lake, write whole days back."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..lake_files import HadoopFS, replace_days
from .transform import deduplicate_day

# ~110 MB per zstd file for this schema: large enough for efficient scans, small enough to spread
# a 10M-event day over both cores.
ROWS_PER_FILE = 2_000_000


def read_days(spark: SparkSession, table: str, days: list[str]) -> DataFrame:
    """Rows of the given event_date partitions (pruned: only those folders are listed and read)."""
    wanted = [date.fromisoformat(d) for d in days]
    return spark.read.option("basePath", table).parquet(table).where(F.col("event_date").isin(wanted))


def compact_days(spark: SparkSession, landing: str, raw: str, days: list[str]) -> dict[str, dict]:
    """Landing -> raw for whole days: deduplicated by event_id, sorted, in well-sized zstd files."""
    deduplicated = deduplicate_day(read_days(spark, landing, days))
    per_day = {str(r["event_date"]): r["count"]
               for r in deduplicated.groupBy("event_date").count().collect()}
    return _write(spark, deduplicated, raw, days, per_day)


def build_days(spark: SparkSession, raw: str, table: str, days: list[str],
               transform: Callable[[DataFrame], DataFrame]) -> dict[str, dict]:
    """raw -> one analytics table for whole days."""
    result = transform(read_days(spark, raw, days)).cache()
    try:
        per_day = {str(r["event_date"]): r["count"]
                   for r in result.groupBy("event_date").count().collect()}
        return _write(spark, result, table, days, per_day)
    finally:
        result.unpersist()


def _write(spark, frame: DataFrame, table: str, days: list[str], per_day: dict[str, int]):
    files_per_day = max(1, math.ceil(max(per_day.values(), default=0) / ROWS_PER_FILE))
    sort_key = "event_ts" if "event_ts" in frame.columns else frame.columns[1]
    shaped = (
        frame.repartition(max(1, len(per_day)) * files_per_day, "event_date",
                          F.pmod(F.xxhash64(*frame.columns[:3]), F.lit(files_per_day)))
        .sortWithinPartitions("event_date", sort_key, *frame.columns[1:3])
    )
    written = replace_days(HadoopFS(spark, table), shaped, table, days)
    for day, info in written.items():
        info["rows"] = per_day.get(day, 0)
    return written
