"""The lake's tables are Delta Lake tables: Parquet partitioned by date, plus a transaction log.

Everything goes through DataFrame writer options and SQL, so it works the same over Spark Connect
(no JVM gateway) and in-process, on local disk, HDFS or s3a:
- a streaming micro-batch appends with txnAppId/txnVersion: a batch that Spark replays after a
  crash is recognised by Delta and written once;
- a day is replaced with replaceWhere in one commit: readers see the old day or the new one,
  never neither, and a concurrent writer gets a conflict instead of silent damage.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

# Readers that follow a table's appends (the live path) read its change feed: only the files
# that later commits added. Set on the landing table when its first batch creates it.
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}
# The landing is read by its date partitions and joined on random event ids,
# where min/max statistics prune nothing; Delta's default, statistics on the first 32 columns,
# was a third of each landing commit. Only the two times keep them, for queries by time.
LANDING_STATISTICS = {"delta.dataSkippingStatsColumns": "event_ts,ingested_at"}
LANDING_PROPERTIES = {**CHANGE_FEED, **LANDING_STATISTICS}


# EVOLVING_SCHEMA: every write may add columns, so a lake written by an older version gains new
# columns (the enrichment's) with its next batch or day, and its older rows read them as null. A
# schema merge never removes a column, and a column whose type changed still fails the write.


def append_batch(frame: DataFrame, table: str, app_id: str, batch_id: int,
                 partition_by: list[str], properties: dict[str, str] | None = None,
                 max_rows_per_file: int | None = None) -> None:
    """Append one micro-batch exactly once: Delta skips a (app_id, batch_id) it has committed.
    `properties` become table properties if this append creates the table."""
    writer = (frame.write.format("delta").mode("append")
              .option("txnAppId", app_id).option("txnVersion", batch_id)
              .option("mergeSchema", "true"))  # see EVOLVING_SCHEMA
    if max_rows_per_file:
        writer = writer.option("maxRecordsPerFile", str(max_rows_per_file))
    for key, value in (properties or {}).items():
        writer = writer.option(key, value)
    writer.partitionBy(*partition_by).save(table)


def enable_change_feed(spark: SparkSession, table: str) -> bool:
    """Turn on the change feed of a table created without it; True if it had to be turned on
    (then versions before now have no feed to read)."""
    if table_properties(spark, table).get("delta.enableChangeDataFeed") == "true":
        return False
    spark.sql(f"ALTER TABLE delta.`{table}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
    return True


def set_missing_properties(spark: SparkSession, table: str, properties: dict[str, str]) -> list[str]:
    """Give an existing table the `properties` it lacks (a lake created by an older version);
    returns the keys it had to set. Nothing happens before the table's first commit."""
    if not is_table(spark, table):
        return []
    current = table_properties(spark, table)
    missing = {k: v for k, v in properties.items() if current.get(k) != v}
    if missing:
        pairs = ", ".join(f"'{k}' = '{v}'" for k, v in missing.items())
        spark.sql(f"ALTER TABLE delta.`{table}` SET TBLPROPERTIES ({pairs})")
    return sorted(missing)


def table_properties(spark: SparkSession, table: str) -> dict[str, str]:
    return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{table}`").collect()}


def replace_days(frame: DataFrame, table: str, days: list[str]) -> dict:
    """Replace the `event_date` partitions `days` of `table` with `frame`'s rows, atomically.

    A day with no rows in `frame` ends up empty, and says so in the result. Returns the commit's
    files, bytes, rows and the columns written:
    {"files": n, "bytes": b, "rows": r, "version": v, "columns": {name: type}}.
    """
    days_sql = ", ".join(f"DATE'{date.fromisoformat(d).isoformat()}'" for d in days)
    (frame.write.format("delta").mode("overwrite")
     .option("replaceWhere", f"event_date IN ({days_sql})")
     .option("mergeSchema", "true")  # see EVOLVING_SCHEMA
     .partitionBy("event_date").save(table))
    columns = {f.name: f.dataType.simpleString() for f in frame.schema.fields}
    return {**last_commit(frame.sparkSession, table), "columns": columns}


def last_commit(spark: SparkSession, table: str) -> dict:
    """Version and write metrics of the table's newest commit, from DESCRIBE HISTORY."""
    (row,) = spark.sql(f"DESCRIBE HISTORY delta.`{table}` LIMIT 1").select(
        "version", "operationMetrics").collect()
    metrics = row["operationMetrics"] or {}
    return {"version": row["version"], "files": int(metrics.get("numFiles", 0)),
            "bytes": int(metrics.get("numOutputBytes", 0)),
            "rows": int(metrics.get("numOutputRows", 0)),
            # DELETE and MERGE name the rows they removed differently.
            "deleted_rows": int(metrics.get("numDeletedRows")
                                or metrics.get("numTargetRowsDeleted") or 0)}


def is_table(spark: SparkSession, path: str) -> bool:
    """True once the first commit has created the table at `path`."""
    return table_version(spark, path) is not None


def table_version(spark: SparkSession, path: str) -> int | None:
    """The newest version of the table at `path`; None before its first commit."""
    try:
        return spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").collect()[0]["version"]
    except Exception as exc:  # Spark raises AnalysisException, whose class differs under Connect
        if _is_missing_table(exc):
            return None
        raise


def partition_columns(spark: SparkSession, path: str) -> list[str]:
    """The table's partition columns; none before its first commit."""
    if not is_table(spark, path):
        return []
    (row,) = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").select("partitionColumns").collect()
    return list(row["partitionColumns"])


def table_created_s(spark: SparkSession, path: str) -> int:
    """When the table at `path` was created, in epoch seconds (a recreated table is newer)."""
    (row,) = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").select(
        F.unix_timestamp("createdAt").alias("created")).collect()
    return int(row["created"])


def table_columns(spark: SparkSession, path: str) -> dict[str, str] | None:
    """The table's columns and their types, from its schema alone; None before its first commit."""
    try:
        schema = spark.read.format("delta").load(path).schema
    except Exception as exc:
        if _is_missing_table(exc):
            return None
        raise
    return {f.name: f.dataType.simpleString() for f in schema.fields}


def _is_missing_table(exc: Exception) -> bool:
    return any(marker in str(exc) for marker in (
        "DELTA_MISSING_DELTA_TABLE", "is not a Delta table", "PATH_NOT_FOUND",
        "DELTA_TABLE_NOT_FOUND"))


def read_days(spark: SparkSession, table: str, days: list[str], version: int | None = None
              ) -> DataFrame:
    """Rows of the given event_date partitions (partition pruning: only those files are read), as
    of table version `version` (None: the newest)."""
    wanted = [date.fromisoformat(d) for d in days]
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(table).where(F.col("event_date").isin(wanted))
