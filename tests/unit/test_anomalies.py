"""Traffic anomaly scoring on hand-built window counts, against answers worked out by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pyspark.sql import functions as F

from spark.analytics import anomalies

DAYS = ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04"]
TARGET = DAYS[-1]
SLOTS = anomalies.WINDOWS_PER_DAY


def _counts(spark, overrides: dict[tuple[str, int], int]):
    """Sessions per window: 100, plus or minus a little by slot and day, overall ("all") only."""
    rows = [(date.fromisoformat(day), slot, "all", "all",
             overrides.get((day, slot), 100 + (slot * 7 + n * 3) % 11 - 5))
            for n, day in enumerate(DAYS) for slot in range(SLOTS)]
    return spark.createDataFrame(rows, "event_date date, slot int, dimension string, "
                                       "segment string, sessions long")


def test_a_spike_and_a_drop_are_found_and_nothing_else(spark):
    counts = _counts(spark, {(TARGET, 100): 400, (TARGET, 200): 0})
    scored = anomalies.score_windows(counts, [TARGET]).collect()
    assert len(scored) == SLOTS
    found = {r["window_start"]: (r["direction"], r["sessions"]) for r in scored if r["is_anomaly"]}
    start = datetime(2026, 5, 4)
    assert found == {start + timedelta(minutes=500): ("spike", 400),
                     start + timedelta(minutes=1000): ("drop", 0)}
    spike = next(r for r in scored if r["sessions"] == 400)
    assert spike["history_days"] == 3 and spike["score"] > anomalies.DEFAULT_THRESHOLD
    assert spike["window_end"] - spike["window_start"] == timedelta(minutes=5)


def test_a_change_too_small_to_matter_is_not_an_anomaly(spark):
    # 30 sessions where the trailing days had 10: far outside the spread, and three times the
    # baseline, but a change of 20 sessions only counts from min_sessions = 20.
    counts = _counts(spark, {(day, 50): 10 for day in DAYS[:-1]} | {(TARGET, 50): 29})
    small = anomalies.score_windows(counts, [TARGET], threshold=3, min_sessions=20).collect()
    assert not [r for r in small if r["is_anomaly"]]
    assert next(r for r in small if r["sessions"] == 29)["score"] > 3
    lower = anomalies.score_windows(counts, [TARGET], threshold=3, min_sessions=19).collect()
    assert [(r["sessions"], r["direction"]) for r in lower if r["is_anomaly"]] == [(29, "spike")]


def test_without_enough_history_nothing_is_judged(spark):
    counts = _counts(spark, {(DAYS[2], 100): 400})
    scored = anomalies.score_windows(counts, [DAYS[2]]).collect()  # two trailing days only
    assert {r["history_days"] for r in scored} == {2}
    assert not [r for r in scored if r["is_anomaly"] or r["score"] is not None]


def test_a_window_without_sessions_is_counted_as_zero(spark):
    rows = [("e1", datetime(2026, 5, 4, 0, 1), date(2026, 5, 4), "s1", "DE"),
            ("e2", datetime(2026, 5, 4, 0, 2), date(2026, 5, 4), "s1", "DE"),
            ("e3", datetime(2026, 5, 4, 0, 11), date(2026, 5, 4), "s2", "US")]
    raw = spark.createDataFrame(rows, "event_id string, event_ts timestamp, event_date date, "
                                      "session_id string, country string")
    counts = {(r["segment"], r["slot"]): r["sessions"]
              for r in anomalies.window_sessions(raw).collect()}
    assert len(counts) == 3 * SLOTS  # all, DE and US, every window of the day
    assert (counts[("all", 0)], counts[("all", 1)], counts[("all", 2)]) == (1, 0, 1)
    assert (counts[("DE", 0)], counts[("US", 0)], counts[("US", 2)]) == (1, 0, 1)
    assert sum(counts.values()) == 4


def _live_baselines(spark, counts, day: str) -> dict[tuple, anomalies.Baseline]:
    """The live path's baselines of `day`: from the trailing days' counts alone."""
    trailing = counts.where(counts.event_date < date.fromisoformat(day))
    return {(r["dimension"], r["segment"], r["slot"]):
            anomalies.Baseline(r["baseline"], r["mad"], r["history_days"])
            for r in anomalies.baselines(trailing, [day]).collect()}


def test_the_live_verdict_on_each_window_is_the_final_one(spark):
    # A spike, a drop, a change near the threshold and one too small to matter.
    counts = _counts(spark, {(TARGET, 100): 400, (TARGET, 200): 0, (TARGET, 150): 130,
                             (TARGET, 151): 112, (TARGET, 152): 70})
    final = anomalies.score_windows(counts, [TARGET]).collect()
    baselines = _live_baselines(spark, counts, TARGET)
    fields = ["baseline", "spread", "score", "history_days", "is_anomaly", "direction"]
    for row in final:
        slot = (row["window_start"] - datetime(2026, 5, 4)) // timedelta(minutes=5)
        live = anomalies.judge(row["sessions"], baselines[("all", "all", slot)])
        assert live == {f: row[f] for f in fields}, row
    assert sum(row["is_anomaly"] for row in final) >= 2


def test_without_enough_history_the_live_path_judges_nothing_either(spark):
    counts = _counts(spark, {(DAYS[2], 100): 400})
    [row] = [r for r in anomalies.score_windows(counts, [DAYS[2]]).collect()
             if r["sessions"] == 400]
    live = anomalies.judge(400, _live_baselines(spark, counts, DAYS[2])[("all", "all", 100)])
    assert live["history_days"] == row["history_days"] == 2
    assert live["score"] is row["score"] is None and not live["is_anomaly"]


def test_a_segment_the_trailing_days_never_saw_is_judged_against_none(spark):
    # window_sessions' grid gives a segment seen on the target day only a zero in every window
    # of every trailing day with traffic: the live path has no rows for it, and new_segment.
    nz = [(date.fromisoformat(day), slot, "country", "NZ", 30 if (day, slot) == (TARGET, 10) else 0)
          for day in DAYS for slot in range(SLOTS)]
    counts = _counts(spark, {}).unionByName(spark.createDataFrame(
        nz, "event_date date, slot int, dimension string, segment string, sessions long"))
    [row] = anomalies.score_windows(counts, [TARGET]).where("segment = 'NZ' and sessions = 30").collect()
    live = anomalies.judge(30, anomalies.new_segment(len(DAYS) - 1))
    assert live == {f: row[f] for f in live}
    assert live["is_anomaly"] and live["direction"] == "spike"


def test_rounding_is_sparks(spark):
    values = [0.0005, 1.0005, 2.0625, -0.0015, 3.14159, 2.675, 1e-7, 123456.78951]
    [row] = spark.createDataFrame([values], [f"v{i}" for i in range(len(values))]).select(
        *[F.round(f"v{i}", anomalies.DECIMALS) for i in range(len(values))]).collect()
    assert [anomalies.spark_round(v) for v in values] == list(row)
