"""The ingest's batch log: one statistics record per committed micro-batch, in a Delta table of
the lake, written by the micro-batch itself. It is how runs learn what the lake gained, including
batches of a run that failed before it could report them."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from .. import lake_layout
from ..delta_lake import is_table

BATCH_LOG_SCHEMA = "query_id string, batch_id long, started_at string, stats string"


@dataclass
class BatchStats:
    batch_id: int
    started_at: str
    landed_at: str  # when the batch's rows became visible in the landing lake (ms precision)
    seconds: float
    start_offsets: dict[str, int]
    end_offsets: dict[str, int]
    input_rows: int
    landing_rows: int
    dead_letters: int
    duplicates_removed: int
    rows_per_event_date: dict[str, int]
    dead_letters_per_reason: dict[str, int]
    phase_seconds: dict[str, float]  # read+parse+dedup, landing write, dead letters

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BatchStats:
        """A logged record; fields that older records carry and this version dropped (the landing
        commit's files and bytes) are ignored."""
        record = json.loads(text)
        return cls(**{name: record[name] for name in cls.__dataclass_fields__})


def read_batch_log(spark: SparkSession, lake_root: str, query_id: str | None = None,
                   first_batch: int = 0, started_after: str | None = None) -> list[dict]:
    """Micro-batch statistics records, oldest first: all of them, one query's from a batch on, or
    those started after a time (file statistics on started_at skip the older log files)."""
    return [json.loads(row.stats) for row in batch_log_rows(spark, lake_root, query_id,
                                                             first_batch, started_after)]


def newest_batch(spark: SparkSession, lake_root: str) -> BatchStats | None:
    """The most recently started micro-batch's statistics; None before the first."""
    log = lake_layout.ingest_log(lake_root)
    if not is_table(spark, log):
        return None
    rows = (spark.read.format("delta").load(log).orderBy(F.desc("started_at"), F.desc("batch_id"))
            .select("stats").limit(1).collect())
    return BatchStats.from_json(rows[0].stats) if rows else None


def batch_log_rows(spark: SparkSession, lake_root: str, query_id: str | None = None,
                    first_batch: int = 0, started_after: str | None = None) -> list:
    log = lake_layout.ingest_log(lake_root)
    if not is_table(spark, log):
        return []
    frame = spark.read.format("delta").load(log)
    if query_id is not None:
        frame = frame.where((F.col("query_id") == query_id) & (F.col("batch_id") >= first_batch))
    if started_after is not None:
        frame = frame.where(F.col("started_at") > started_after)
    return frame.orderBy("started_at", "batch_id").select("query_id", "batch_id", "stats").collect()
