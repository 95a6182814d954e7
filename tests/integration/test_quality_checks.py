"""The expectation suites on real Spark DataFrames: each key-uniqueness check passes on unique keys
and fails on a repeated one, with the observed proportion in its result."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from clickstream_dagster.checks.gx_suites import validate
from clickstream_dagster.checks.quality import _parameters

DAY = "2026-03-04"


def _raw(spark, event_ids: list[str]):
    rows = [(event_id, "page_view", datetime(2026, 3, 4, 10, minute), f"u{minute}", f"s{minute}",
             "https://shop.example.com/", "DE", date(2026, 3, 4))
            for minute, event_id in enumerate(event_ids)]
    return spark.createDataFrame(rows, "event_id string, event_type string, event_ts timestamp, "
                                       "user_id string, session_id string, url string, "
                                       "country string, event_date date")


@pytest.mark.parametrize(("event_ids", "unique"), [(["a", "b", "c"], True), (["a", "b", "a"], False)])
def test_event_id_uniqueness_fails_on_a_repeated_event_id(spark, event_ids, unique):
    parameters = _parameters(DAY, {DAY: len(event_ids)}, {})
    results = validate("raw_clickstream", _raw(spark, event_ids), parameters)
    check = results["event_id_is_unique"]
    assert check.passed is unique
    (observed,) = check.observed
    assert observed["observed_value"] == pytest.approx(len(set(event_ids)) / len(event_ids))
    # Nothing else in the suite objects to these rows.
    assert all(outcome.passed for name, outcome in results.items() if name != "event_id_is_unique")
