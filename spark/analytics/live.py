"""The live path's Spark side: open days' served tables, recomputed only where new rows landed.

The unit of recomputation is the 5-minute window. A refresh reads the rows the landing gained
since the last refresh (Delta's change feed), finds the windows they fall in, and re-reads exactly
those windows' events, deduplicated. From them:
- url_popularity_5m for those windows is exact, and final in all but name;
- url_country and session *parts* per window replace the earlier parts of those windows in two
  Delta tables, and the touched keys are merged from the day's parts: sessions exactly, url x
  country with exact counts and HyperLogLog distinct counts.
Work is proportional to the touched windows, whose size is bounded by the traffic of 5 minutes,
never to the whole day. The closed day's final recompute replaces all of it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..delta_lake import read_days
from .transform import (
    WINDOW_MINUTES,
    deduplicate_day,
    session_parts,
    sessions_from_parts,
    url_country_from_parts,
    url_country_parts,
    url_popularity_5m,
    window_start,
)

WINDOW_LENGTH = timedelta(minutes=WINDOW_MINUTES)

Windows = dict[str, list[datetime]]  # day -> starts of the windows to recompute


def new_rows(spark: SparkSession, landing: str, after_version: int, days: list[str]) -> DataFrame:
    """Rows appended to the landing after `after_version`, on `days`: the change feed reads only
    the files those commits added."""
    feed = (spark.read.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", after_version + 1).load(landing))
    return feed.where((F.col("_change_type") == "insert")
                      & F.col("event_date").isin([date.fromisoformat(d) for d in days]))


def all_rows(spark: SparkSession, landing: str, days: list[str]) -> DataFrame:
    """Every landing row of `days`: the first refresh, with no earlier version to start after."""
    return read_days(spark, landing, days)


def touched_windows(rows: DataFrame) -> tuple[Windows, int]:
    """The windows, per day, that `rows` fall in, and the number of rows."""
    windows: Windows = {}
    counted = rows.groupBy("event_date", window_start()).count().collect()
    for row in counted:
        windows.setdefault(str(row["event_date"]), []).append(row["window_start"])
    return ({day: sorted(starts) for day, starts in sorted(windows.items())},
            sum(row["count"] for row in counted))


def window_events(spark: SparkSession, landing: str, windows: Windows) -> DataFrame:
    """Every landing event of the windows, deduplicated over them: exactly their final input.
    Partition pruning (date and hour) and file statistics (event_ts) keep the read to them."""
    frame = spark.read.format("delta").load(landing).where(_events_in(windows))
    return deduplicate_day(frame.where(_window_in(windows, window_start())))


def window_parts(events: DataFrame) -> dict[str, DataFrame]:
    """The per-window tables of the windows' events: served rows and mergeable parts."""
    return {
        "url_popularity_5m": url_popularity_5m(events),
        "url_country_parts": url_country_parts(events),
        "session_parts": session_parts(events.withColumn("window_start", window_start()),
                                       "window_start"),
    }


def replace_windows(parts: DataFrame, table: str, windows: Windows) -> None:
    """Replace the windows' rows of a parts table in one commit (readers never see half)."""
    (parts.write.format("delta").mode("overwrite")
     .option("replaceWhere", _window_in(windows, F.col("window_start"), sql=True))
     .partitionBy("event_date").save(table))


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


def _events_in(windows: Windows):
    per_day = []
    for day, starts in windows.items():
        hours = sorted({f"{start.hour:02d}" for start in starts})  # a window never spans two
        per_day.append((F.col("event_date") == F.lit(date.fromisoformat(day)))
                       & F.col("event_hour").isin(hours)
                       & (F.col("event_ts") >= F.lit(starts[0]))
                       & (F.col("event_ts") < F.lit(starts[-1] + WINDOW_LENGTH)))
    return _any(per_day)


def _window_in(windows: Windows, column, sql: bool = False):
    if sql:
        return " OR ".join(
            f"(event_date = DATE'{day}' AND window_start IN ("
            + ", ".join(f"TIMESTAMP'{s:%Y-%m-%d %H:%M:%S}'" for s in starts) + "))"
            for day, starts in windows.items())
    return _any([(F.col("event_date") == F.lit(date.fromisoformat(day))) & column.isin(starts)
                 for day, starts in windows.items()])


def _any(conditions):
    result = F.lit(False)
    for condition in conditions:
        result = result | condition
    return result
