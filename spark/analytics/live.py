"""The live path's Spark side: open days' served tables, updated from only the new landing rows.

Per 5-minute window, two Delta tables under `<lake>/live/` keep mergeable parts of the open days:
url x country (counts, HyperLogLog sketches of users and sessions, dwell sums) and sessions
(min, max and sums per session). A refresh reads the rows the landing gained since the last one
(Delta's change feed), builds their parts, and merges them into the parts of the windows they
fall in; the served rows of the touched keys are then merged from the parts. The work is
proportional to the new rows and to the touched windows' parts, never to the day's events.

Exactly once: every parts row records the landing version it includes (`landing_version`), and a
window's rows are replaced in one commit. A refresh that failed after merging some windows is
repeated by the next one, which adds to each window only the rows of later landing commits.
The closed day's final recompute replaces all of it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..delta_lake import read_days
from .transform import (
    WINDOW_MINUTES,
    deduplicate_day,
    merge_session_parts,
    merge_url_country_parts,
    session_parts,
    sessions_from_parts,
    url_country_from_parts,
    url_country_parts,
    url_popularity_from_parts,
    window_start,
)

URL_COUNTRY_PARTS = "url_country_parts"
SESSION_PARTS = "session_parts"
# How each parts table is built from landing rows, and merged with itself, per window.
PARTS: dict[str, tuple[Callable[[DataFrame], DataFrame], Callable[..., DataFrame]]] = {
    URL_COUNTRY_PARTS: (url_country_parts, merge_url_country_parts),
    SESSION_PARTS: (lambda rows: session_parts(rows, "window_start"), merge_session_parts),
}
ROW_COLUMNS = ["event_id", "event_type", "event_ts", "event_date", "user_id", "session_id",
               "url_path", "country", "device_type"]

Windows = dict[str, list[datetime]]  # day -> starts of the windows that changed


def new_rows(spark: SparkSession, landing: str, after_version: int, days: list[str]) -> DataFrame:
    """Rows appended to the landing after `after_version`, on `days`, with the version that
    added each (`_commit_version`): the change feed reads only the files those commits added."""
    feed = (spark.read.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", after_version + 1).load(landing))
    return (feed.where((F.col("_change_type") == "insert") & _on_days(days))
            .select(*ROW_COLUMNS, "_commit_version", window_start()))


def all_rows(spark: SparkSession, landing: str, days: list[str]) -> DataFrame:
    """Every landing row of `days`, deduplicated: the first refresh, with nothing to merge into."""
    return (deduplicate_day(read_days(spark, landing, days)).select(*ROW_COLUMNS)
            .withColumn("_commit_version", F.lit(None).cast("long")).withColumn(
                "window_start", window_start()))


def touched_windows(rows: DataFrame) -> tuple[Windows, int]:
    """The windows, per day, that `rows` fall in, and the number of rows."""
    windows: Windows = {}
    counted = rows.groupBy("event_date", "window_start").count().collect()
    for row in counted:
        windows.setdefault(str(row["event_date"]), []).append(row["window_start"])
    return ({day: sorted(starts) for day, starts in sorted(windows.items())},
            sum(row["count"] for row in counted))


def merge_into_parts(spark: SparkSession, kind: str, table: str, rows: DataFrame,
                     windows: Windows, version: int, *, whole_days: list[str] | None = None) -> None:
    """Merge the rows' parts into the `kind` parts of their windows, through landing version
    `version`. `whole_days` replaces those days' parts outright (a first refresh, from all rows,
    and the only one that may create the table)."""
    build, merge = PARTS[kind]
    if whole_days:
        merged, predicate = build(rows), _days_sql(whole_days)
    else:
        existing = spark.read.format("delta").load(table).where(_windows_in(windows))
        # Rows already merged into a window (a refresh that failed after this table's commit)
        # are behind its landing_version; only later commits' rows are added.
        included = existing.groupBy("event_date", "window_start").agg(
            F.max("landing_version").alias("_included"))
        fresh = rows.join(F.broadcast(included), ["event_date", "window_start"], "left").where(
            F.col("_included").isNull() | (F.col("_commit_version") > F.col("_included")))
        merged = merge(existing.drop("landing_version").unionByName(build(fresh.drop("_included"))),
                       "window_start")
        predicate = _windows_sql(windows)
    merged = merged.withColumn("landing_version", F.lit(version))
    # A refresh's parts are a few thousand rows: one file, not one per shuffle partition.
    shaped = merged if whole_days else merged.coalesce(1)
    (shaped.write.format("delta").mode("overwrite").option("replaceWhere", predicate)
     .partitionBy("event_date").save(table))


def live_url_popularity(spark: SparkSession, table: str, windows: Windows) -> DataFrame:
    """url_popularity_5m rows of the windows, summed from their url x country parts."""
    return url_popularity_from_parts(spark.read.format("delta").load(table)
                                     .where(_windows_in(windows)))


def live_url_country(spark: SparkSession, table: str, touched: DataFrame, days: list[str]
                     ) -> DataFrame:
    """url_country rows of the (event_date, url, country) keys in `touched`, from the days' parts."""
    parts = read_days(spark, table, days).join(touched.select("event_date", "url", "country")
                                               .distinct(), ["event_date", "url", "country"],
                                               "left_semi")
    return url_country_from_parts(parts)


def live_sessions(spark: SparkSession, table: str, touched: DataFrame,
                  since: dict[str, datetime | None]) -> DataFrame:
    """Whole sessions of the (event_date, session_id) keys in `touched`, merged from their parts.
    `since` bounds, per day, the windows read: no touched session started before it (None: the
    whole day)."""
    bounds = []
    for day, start in since.items():
        bound = F.col("event_date") == F.lit(date.fromisoformat(day))
        bounds.append(bound & (F.col("window_start") >= F.lit(start)) if start else bound)
    parts = spark.read.format("delta").load(table).where(_any(bounds))
    return sessions_from_parts(parts.join(touched.select("event_date", "session_id").distinct(),
                                          ["event_date", "session_id"], "left_semi"))


def drop_days_before(spark: SparkSession, table: str, day: str) -> None:
    """Forget the parts of days the final recompute has taken over."""
    spark.sql(f"DELETE FROM delta.`{table}` WHERE event_date < DATE'{date.fromisoformat(day)}'")


def window_floor(ts: datetime) -> datetime:
    """The start of the 5-minute window holding `ts`."""
    return ts.replace(minute=ts.minute - ts.minute % WINDOW_MINUTES, second=0, microsecond=0)


def _on_days(days: list[str]):
    return F.col("event_date").isin([date.fromisoformat(d) for d in days])


def _windows_in(windows: Windows):
    return _any([(F.col("event_date") == F.lit(date.fromisoformat(day)))
                 & F.col("window_start").isin(starts) for day, starts in windows.items()])


def _windows_sql(windows: Windows) -> str:
    return " OR ".join(
        f"(event_date = DATE'{day}' AND window_start IN ("
        + ", ".join(f"TIMESTAMP'{s:%Y-%m-%d %H:%M:%S}'" for s in starts) + "))"
        for day, starts in windows.items())


def _days_sql(days: list[str]) -> str:
    return "event_date IN (" + ", ".join(f"DATE'{date.fromisoformat(d)}'" for d in days) + ")"


def _any(conditions):
    result = F.lit(False)
    for condition in conditions:
        result = result | condition
    return result
