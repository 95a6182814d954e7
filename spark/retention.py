"""Retention of the lake's raw inputs: the landing's events and the dead letters' original bytes
are personal data, so days past their retention are deleted, then their files vacuumed.

The landing is deleted only where the raw table holds the compacted copy: a late event that
reached an expired day after its compaction stays in the landing until the next compaction takes
it (see `compact_days`), so retention never loses an event. Deleted rows leave the disk when
VACUUM removes files older than the table's `delta.deletedFileRetentionDuration` (7 days unless
set): readers of recent versions, and time travel within that window, keep working.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import SparkSession

from .delta_lake import last_commit, table_properties, table_version
from .session import parallelism, scoped_conf

# A landing table property: days before it may have lost rows to retention, so their compaction
# keeps the raw table's rows (see `compact_days`). It only moves forward.
EXPIRED_BEFORE = "clickstream.expiredBefore"


def expire_landing(spark: SparkSession, landing: str, raw: str, before: date) -> int:
    """Delete the landing rows dated before `before` whose event the raw table holds; returns the
    rows deleted."""
    if table_version(spark, landing) is None or table_version(spark, raw) is None:
        return 0
    # Recorded first: a compaction that starts after this never mistakes a thinned day for a whole.
    if before.isoformat() > table_properties(spark, landing).get(EXPIRED_BEFORE, ""):
        spark.sql(f"ALTER TABLE delta.`{landing}` SET TBLPROPERTIES "
                  f"('{EXPIRED_BEFORE}' = '{before.isoformat()}')").collect()
    # The target's own date bound lets Delta prune the landing to the expired days' files.
    return _deleted(spark, landing, f"""
        MERGE INTO delta.`{landing}` AS landing
        USING (SELECT DISTINCT event_date, event_id FROM delta.`{raw}`
               WHERE event_date < DATE'{before}') AS compacted
        ON landing.event_date < DATE'{before}' AND landing.event_date = compacted.event_date
           AND landing.event_id = compacted.event_id
        WHEN MATCHED THEN DELETE""")


def expired_before(spark: SparkSession, landing: str) -> str | None:
    """The day before which retention may have deleted compacted landing rows; None if never."""
    if table_version(spark, landing) is None:
        return None
    return table_properties(spark, landing).get(EXPIRED_BEFORE)


def expire_partitions(spark: SparkSession, table: str, column: str, before: date) -> int:
    """Delete the rows whose partition column `column` is before `before` (whole partitions: the
    commit only drops files); returns the rows deleted."""
    if table_version(spark, table) is None:
        return 0
    return _deleted(spark, table, f"DELETE FROM delta.`{table}` WHERE {column} < DATE'{before}'")


def vacuum(spark: SparkSession, table: str) -> None:
    """Remove the files no version within the table's retention window needs."""
    if table_version(spark, table) is None:
        return
    # VACUUM lists the table in as many tasks as partition discovery uses, 10,000 by default, each
    # a task's fixed cost even for a small table: one task per core instead.
    with scoped_conf(spark, {"spark.sql.sources.parallelPartitionDiscovery.parallelism":
                             str(parallelism(spark))}):
        spark.sql(f"VACUUM delta.`{table}`").collect()


def _deleted(spark: SparkSession, table: str, statement: str) -> int:
    before = table_version(spark, table)
    spark.sql(statement).collect()
    commit = last_commit(spark, table)
    return commit["deleted_rows"] if commit["version"] != before else 0  # no match: no commit
