"""Traffic anomalies: each 5-minute window's sessions, overall and per country, against the same
window of the trailing days (a seasonal baseline), scored with robust statistics.

Traffic is counted as distinct sessions per window, not events: one visitor's burst of clicks
moves the events of a small country's window tenfold, but not its sessions. On simulated days
(docs/architecture.md, "Anomaly alerts") event counts raised 20 to 90 false alarms a day; session counts none.

A window's score is (sessions - baseline) / spread, where
- baseline: the median of the same window over up to TRAILING_DAYS days before;
- spread: 1.4826 x the median absolute deviation from their own baselines of the trailing days'
  windows within +-30 minutes of it (pooled, since a handful of days alone gives no stable spread),
  and never below the Poisson noise of the baseline, sqrt(baseline).
A window is an anomaly when the score passes the threshold and the change is large enough to
matter: at least `min_sessions` sessions and half the baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from config.defaults import DEFAULT_MIN_SESSIONS, DEFAULT_THRESHOLD

from .transform import WINDOW_MINUTES

TRAILING_DAYS = 7
MIN_HISTORY_DAYS = 3  # fewer trailing days with traffic: the day's windows are not judged
WINDOWS_PER_DAY = 24 * 60 // WINDOW_MINUTES
POOLED_WINDOWS = 6  # either side of a window: its spread pools +-30 minutes of the trailing days
MAD_TO_SIGMA = 1.4826  # a normal distribution's standard deviation per median absolute deviation
MIN_RELATIVE_CHANGE = 0.5
KEYS = ["dimension", "segment"]
UNKNOWN_COUNTRY = "unknown"
DECIMALS = 3
ROUNDING = Decimal(1).scaleb(-DECIMALS)


def history_days(days: list[str]) -> list[str]:
    """The days to read for scoring `days`: each one and its trailing days."""
    first = date.fromisoformat(min(days)) - timedelta(days=TRAILING_DAYS)
    last = date.fromisoformat(max(days))
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def segment_country() -> Column:
    """A row's country segment: events without a country count under "unknown"."""
    return F.coalesce("country", F.lit(UNKNOWN_COUNTRY))


def window_sessions(raw: DataFrame) -> DataFrame:
    """Distinct sessions per (event_date, window slot of the day, dimension, segment), overall
    ("all") and per country, with a zero for every window of a day with traffic that had none."""
    slot = (F.hour("event_ts") * 60 + F.minute("event_ts")) / F.lit(WINDOW_MINUTES)
    rows = raw.select("event_date", F.floor(slot).cast("int").alias("slot"), "session_id",
                      segment_country().alias("country"))
    counted = (rows.groupBy("event_date", "slot", "country")
               .agg(F.count_distinct("session_id").alias("sessions"))
               .select("event_date", "slot", F.lit("country").alias("dimension"),
                       F.col("country").alias("segment"), "sessions")
               .unionByName(rows.groupBy("event_date", "slot")
                            .agg(F.count_distinct("session_id").alias("sessions"))
                            .select("event_date", "slot", F.lit("all").alias("dimension"),
                                    F.lit("all").alias("segment"), "sessions")))
    # A window without a session is the strongest drop there is, so it must be a row: every
    # segment seen in the range, on every day with traffic, in every slot.
    grid = (counted.select("event_date").distinct()
            .crossJoin(counted.select(*KEYS).distinct())
            .withColumn("slot", F.explode(F.sequence(F.lit(0), F.lit(WINDOWS_PER_DAY - 1)))))
    return (grid.join(counted, ["event_date", "slot", *KEYS], "left")
            .withColumn("sessions", F.coalesce("sessions", F.lit(0)).cast("long")))


def baselines(counts: DataFrame, days: list[str]) -> DataFrame:
    """Per day of `days`, segment and window slot: the trailing days' median (`baseline`), the
    median absolute deviation pooled over nearby slots (`mad`) and the trailing days with traffic
    (`history_days`). Only the trailing days of `counts` (window_sessions) are read, so an open
    day's baselines are known before its traffic."""
    target_days = counts.sparkSession.createDataFrame(
        [(date.fromisoformat(day),) for day in days], "day date")
    trailing = (target_days.join(counts, (counts["event_date"] < F.col("day"))
                                 & (counts["event_date"] >= F.date_sub(F.col("day"), TRAILING_DAYS)))
                .select("day", "event_date", "slot", *KEYS, "sessions"))
    per_window = ["day", *KEYS, "slot"]
    baseline = trailing.groupBy(*per_window).agg(
        F.median("sessions").alias("baseline"), F.count_distinct("event_date").alias("history_days"))
    # Each trailing window's deviation from its own baseline, then their median over the
    # neighbouring slots: one value per target window.
    nearby = (Window.partitionBy("day", *KEYS).orderBy("slot")
              .rangeBetween(-POOLED_WINDOWS, POOLED_WINDOWS))
    spread = (trailing.join(baseline, per_window)
              .withColumn("deviation", F.abs(F.col("sessions") - F.col("baseline")))
              .withColumn("mad", _median_of(F.collect_list("deviation").over(nearby)))
              .groupBy(*per_window).agg(F.first("mad").alias("mad")))
    return baseline.join(spread, per_window)


def score_windows(counts: DataFrame, days: list[str], threshold: float = DEFAULT_THRESHOLD,
                  min_sessions: int = DEFAULT_MIN_SESSIONS) -> DataFrame:
    """Every window of `days`, each segment, with its baseline, spread, score and verdict;
    `counts` is window_sessions over the days and their history_days. `judge` is the same rule
    for one window, in Python, for the live path."""
    targets = counts.where(F.col("event_date").isin([date.fromisoformat(d) for d in days]))
    per_window = ["day", *KEYS, "slot"]
    scored = (targets.withColumnRenamed("event_date", "day")
              .join(baselines(counts, days), per_window, "left")
              .withColumn("history_days", F.coalesce("history_days", F.lit(0)))
              .withColumn("spread", F.greatest(F.col("mad") * MAD_TO_SIGMA,
                                               F.sqrt(F.greatest("baseline", F.lit(1.0)))))
              .withColumn("change", F.col("sessions") - F.col("baseline")))
    judged = F.col("history_days") >= MIN_HISTORY_DAYS
    anomaly = (judged & (F.abs(F.col("change")) / F.col("spread") >= threshold)
               & (F.abs(F.col("change")) >= min_sessions)
               & (F.abs(F.col("change")) >= MIN_RELATIVE_CHANGE * F.col("baseline")))
    start = F.timestamp_add("MINUTE", F.col("slot") * WINDOW_MINUTES, F.col("day").cast("timestamp"))
    return scored.select(
        F.col("day").alias("event_date"), start.alias("window_start"),
        F.timestamp_add("MINUTE", F.lit(WINDOW_MINUTES), start).alias("window_end"),
        *KEYS, "sessions",
        _rounded(F.when(judged, F.col("baseline"))).alias("baseline"),
        _rounded(F.when(judged, F.col("spread"))).alias("spread"),
        _rounded(F.when(judged, F.col("change") / F.col("spread"))).alias("score"),
        F.col("history_days").cast("int").alias("history_days"),
        anomaly.alias("is_anomaly"),
        F.when(anomaly, F.when(F.col("change") > 0, "spike").otherwise("drop")).alias("direction"),
    )


@dataclass(frozen=True)
class Baseline:
    """One window's trailing baseline, a row of `baselines`. A segment the trailing days never
    saw counts as none in each of them (window_sessions' grid): `new_segment`."""

    baseline: float
    mad: float
    history_days: int


def judge(sessions: int, baseline: Baseline, threshold: float = DEFAULT_THRESHOLD,
          min_sessions: int = DEFAULT_MIN_SESSIONS) -> dict:
    """score_windows' verdict on one window, in Python, to the same rounding: the served fields
    baseline, spread, score, history_days, is_anomaly and direction."""
    if baseline.history_days < MIN_HISTORY_DAYS:
        return {"baseline": None, "spread": None, "score": None,
                "history_days": baseline.history_days, "is_anomaly": False, "direction": None}
    spread = max(baseline.mad * MAD_TO_SIGMA, math.sqrt(max(baseline.baseline, 1.0)))
    change = sessions - baseline.baseline
    anomaly = (abs(change) / spread >= threshold and abs(change) >= min_sessions
               and abs(change) >= MIN_RELATIVE_CHANGE * baseline.baseline)
    return {"baseline": spark_round(baseline.baseline), "spread": spark_round(spread),
            "score": spark_round(change / spread), "history_days": baseline.history_days,
            "is_anomaly": anomaly,
            "direction": ("spike" if change > 0 else "drop") if anomaly else None}


def new_segment(history_days: int) -> Baseline:
    """The baseline of a segment none of the trailing days saw: none in every window of each."""
    return Baseline(0.0, 0.0, history_days)


def spark_round(value: float) -> float:
    """Spark's round(value, 3): half up on the shortest decimal form of the double."""
    return float(Decimal(repr(value)).quantize(ROUNDING, rounding=ROUND_HALF_UP))


# traffic_anomalies' columns, and the raw_clickstream columns each comes from (the UI's lineage).
_COUNTED = ["session_id", "event_ts", "country"]
COLUMN_SOURCES: dict[str, list[str]] = {
    "event_date": ["event_date"], "window_start": ["event_ts"], "window_end": ["event_ts"],
    "dimension": ["country"], "segment": ["country"], "sessions": _COUNTED,
    **dict.fromkeys(("baseline", "spread", "score", "history_days", "is_anomaly", "direction"),
                    [*_COUNTED, "event_date"]),
}


def _median_of(values: Column) -> Column:
    """The median of an array column (Spark's median aggregate takes no window frame)."""
    ordered = F.array_sort(values)
    last = F.size(ordered) - 1
    return (F.get(ordered, F.floor(last / 2).cast("int"))
            + F.get(ordered, F.ceil(last / 2).cast("int"))) / 2


def _rounded(column: Column) -> Column:
    return F.round(column, DECIMALS)
