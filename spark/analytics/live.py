"""The live path's Spark side: the rows an open day gained, and the states of whole open days.

A refresh reads the rows the landing gained since the last one (Delta's change feed reads only the
files those commits added) and merges them into the live documents in Elasticsearch, which keep
their own mergeable state (clickstream_dagster/live/documents.py). Spark computes those
states itself only for a whole open day: the first refresh, or one with too many new rows.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..delta_lake import read_days
from ..enrichment import with_enriched_columns
from . import anomalies
from .transform import (
    FIRST_TOUCH,
    analytics_rows,
    deduplicate_day,
    session_parts,
    url_country_parts,
    url_popularity_5m,
    window_start,
)

ROW_COLUMNS = ["event_id", "event_type", "event_ts", "event_date", "user_id", "session_id",
               "url_path", "country", "device_type", *FIRST_TOUCH.values()]
URL_POPULARITY = "url_popularity"
URL_COUNTRY = "url_country"
SESSIONS = "sessions"
TRAFFIC = "traffic"


def new_rows(spark: SparkSession, landing: str, after_version: int, through_version: int,
             days: list[str], include_bots: bool = False) -> DataFrame:
    """Rows appended to the landing after `after_version` through `through_version`, on `days`,
    with the version that added each (`_commit_version`) and their 5-minute window. The bound
    matters: the ingest keeps committing while a refresh reads, and whatever a refresh folds in
    must be what its documents say they include."""
    feed = (spark.read.format("delta").option("readChangeFeed", "true")
            .option("startingVersion", after_version + 1)
            .option("endingVersion", through_version).load(landing))
    return (with_enriched_columns(
                analytics_rows(feed.where((F.col("_change_type") == "insert") & _on_days(days)),
                               include_bots))
            .select(*ROW_COLUMNS, "_commit_version", window_start()))


def all_rows(spark: SparkSession, landing: str, days: list[str], version: int,
             include_bots: bool = False) -> DataFrame:
    """Every landing row of `days` as of landing version `version`, deduplicated."""
    rows = analytics_rows(read_days(spark, landing, days, version), include_bots)
    return with_enriched_columns(deduplicate_day(rows)).select(*ROW_COLUMNS)


def whole_day_states(rows: DataFrame) -> dict[str, DataFrame]:
    """The live documents' states over whole days of rows: 5-minute url counts, url x country
    counts with sketches of users and sessions, and whole sessions with their first and last
    events."""
    return {URL_POPULARITY: url_popularity_5m(rows), URL_COUNTRY: url_country_parts(rows),
            SESSIONS: session_parts(rows), TRAFFIC: window_session_ids(rows)}


def window_session_ids(rows: DataFrame) -> DataFrame:
    """The sessions of each 5-minute window, overall and per country, as lists of ids: the
    states of the live traffic windows that anomalies.window_sessions counts."""
    windowed = rows.select("event_date", window_start(), "session_id",
                           anomalies.segment_country().alias("segment"))

    def per(dimension: str, *segment) -> DataFrame:
        return (windowed.groupBy("event_date", "window_start", *segment)
                .agg(F.collect_set("session_id").alias("session_ids"))
                .select("event_date", "window_start", F.lit(dimension).alias("dimension"),
                        (segment[0] if segment else F.lit("all")).alias("segment"),
                        "session_ids"))

    return per("country", F.col("segment")).unionByName(per("all"))


def trailing_baselines(spark: SparkSession, raw: str, day: str,
                       include_bots: bool = False) -> DataFrame:
    """The open `day`'s window baselines (anomalies.baselines) from the raw rows of its trailing
    days: what the day's final anomaly scoring will read for them."""
    trailing = [d for d in anomalies.history_days([day]) if d != day]
    counts = anomalies.window_sessions(analytics_rows(read_days(spark, raw, trailing), include_bots))
    return anomalies.baselines(counts, [day]).select(*anomalies.KEYS, "slot", "baseline", "mad",
                                                     "history_days")


def _on_days(days: list[str]):
    return F.col("event_date").isin([date.fromisoformat(d) for d in days])
