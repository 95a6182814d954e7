"""The expectation suites on real Spark DataFrames: each key-uniqueness check passes on unique keys
and fails on a repeated one, with the observed proportion in its result."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pytest
from pyspark.sql import functions as F

from clickstream_dagster.checks import gx_suites
from clickstream_dagster.checks.gx_suites import validate
from clickstream_dagster.checks.quality import _parameters

DAY = "2026-03-04"
ROUNDS = 30  # without a lock, two threads mixed their frames within this many rounds


def _raw(spark, event_ids: list[str]):
    rows = [(event_id, "page_view", datetime(2026, 3, 4, 10, minute), f"u{minute}", f"s{minute}",
             "https://shop.example.com/", "DE", date(2026, 3, 4))
            for minute, event_id in enumerate(event_ids)]
    return spark.createDataFrame(rows, "event_id string, event_type string, event_ts timestamp, "
                                       "user_id string, session_id string, url string, "
                                       "country string, event_date date")


@pytest.fixture(params=["pandas", "spark"])
def engine(request, monkeypatch):
    """Small frames are validated in-process with pandas, large ones on Spark: test both."""
    if request.param == "spark":
        monkeypatch.setattr(gx_suites, "LOCAL_ROWS", -1)
    return request.param


@pytest.mark.parametrize(("event_ids", "unique"), [(["a", "b", "c"], True), (["a", "b", "a"], False)])
def test_event_id_uniqueness_fails_on_a_repeated_event_id(spark, engine, event_ids, unique):
    parameters = _parameters(DAY, {DAY: len(event_ids)}, {})
    results = validate("raw_clickstream", _raw(spark, event_ids), parameters)
    check = results["event_id_is_unique"]
    assert check.passed is unique
    (observed,) = check.observed
    assert observed["observed_value"] == pytest.approx(len(set(event_ids)) / len(event_ids))
    # Nothing else in the suite objects to these rows.
    assert all(outcome.passed for name, outcome in results.items() if name != "event_id_is_unique")


@pytest.mark.parametrize(("now", "passes"), [
    (datetime(2026, 3, 4, 9, 0, tzinfo=UTC), True),  # this morning: the day is still open
    (datetime(2026, 3, 5, 1, 59, tzinfo=UTC), True),  # inside the lateness window
    (datetime(2026, 3, 5, 2, 0, tzinfo=UTC), False),  # closed: judged as a whole day
])
def test_a_partial_open_day_passes_the_volume_band_that_a_closed_day_fails(spark, engine, now, passes):
    history = {"2026-03-01": 40, "2026-03-02": 44, "2026-03-03": 42}  # three whole days
    today = _raw(spark, [f"e{i}" for i in range(6)])  # a morning's share of the traffic
    parameters = _parameters(DAY, {DAY: 6}, history, now=now)
    results = validate("raw_clickstream", today, parameters)
    assert parameters["trailing_days"] == 3
    assert results["volume_is_within_the_trailing_band"].passed is passes
    # The ceiling holds whether the day is open or not: a spike is never waved through.
    quiet_history = {day: 2 for day in history}  # 6 rows are three times a whole quiet day
    spike = _parameters(DAY, {DAY: 6}, quiet_history, now=now)
    assert not validate("raw_clickstream", today, spike)["volume_is_within_the_trailing_band"].passed


def test_a_suite_that_cannot_be_evaluated_is_an_error_not_a_failed_check(spark, engine):
    # GX would report the missing column as failed checks (keys_are_not_null, url_is_well_formed):
    # a verdict on data it never read.
    frame = _raw(spark, ["a", "b"]).drop("url")
    with pytest.raises(gx_suites.SuiteNotEvaluated, match=r"not_be_null\(url\).*url"):
        validate("raw_clickstream", frame, _parameters(DAY, {DAY: 2}, {}))


def test_validations_at_once_in_one_process_each_judge_their_own_frame(spark):
    # In-process runs on threads validate at the same time; each verdict must be on its own rows.
    frames = {True: _raw(spark, ["a", "b", "c"]),
              False: _raw(spark, [f"e{i}" for i in range(7)]).withColumn("url", F.lit("not a url"))}

    def judge(clean: bool) -> list[bool]:
        rows = 3 if clean else 7
        parameters = _parameters(DAY, {DAY: rows}, {})
        return [validate("raw_clickstream", frames[clean], parameters)["url_is_well_formed"].passed
                for _ in range(ROUNDS)]

    with ThreadPoolExecutor(2) as pool:
        verdicts = dict(zip((True, False), pool.map(judge, (True, False)), strict=True))
    assert verdicts == {clean: [clean] * ROUNDS for clean in (True, False)}
