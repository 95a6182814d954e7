"""Traffic anomaly scoring on hand-built window counts, against answers worked out by hand."""

from __future__ import annotations

from datetime import date, datetime, timedelta

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
