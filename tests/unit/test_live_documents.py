"""Live documents fold new rows into exactly what the daily tables compute, and never fold a row
twice; their sketches merge with the ones Spark computes for whole days."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from clickstream_dagster.live import documents as ld
from clickstream_dagster.serving.indices import json_value
from spark.analytics import anomalies, live, transform
from tests.unit.test_analytics_transform import COLUMNS, EVENTS

# Two landing commits. The second touches documents the first made (s1's session, "/" in DE, u1's
# sketches) and makes new ones (the US session, the confirmation page).
FIRST, SECOND = {"e1", "e3", "e4", "e5"}, {"e2", "e6", "e7", "e8"}


def _traffic_windows(raw):
    """traffic_anomalies' windows with sessions (a live document exists once a row falls in it),
    without the verdict, which live/anomalies.py adds."""
    days = [str(r["event_date"]) for r in raw.select("event_date").distinct().collect()]
    scored = anomalies.score_windows(anomalies.window_sessions(raw), days)
    return scored.where("sessions > 0").select("event_date", "window_start", "window_end",
                                               *anomalies.KEYS, "sessions")


DAILY = {ld.URL_POPULARITY_LIVE: transform.url_popularity_5m,
         ld.URL_COUNTRY_LIVE: transform.url_country_daily,
         ld.SESSIONS_LIVE: transform.user_sessions,
         ld.TRAFFIC_LIVE: _traffic_windows}


@pytest.fixture(scope="module")
def commits(spark):
    raw = spark.createDataFrame(EVENTS, COLUMNS)
    rows = raw.select(*live.ROW_COLUMNS, transform.window_start()).toArrow().to_pylist()
    for row in rows:
        row["_commit_version"] = 1 if row["event_id"] in FIRST else 2
    return raw, [r for r in rows if r["event_id"] in FIRST], [r for r in rows if r["event_id"] in SECOND]


def _fold(family, documents, rows, version):
    """One refresh of `family` from `rows` over `documents` (id -> source); returns what it wrote."""
    spec = family.spec
    by_key = {}
    for index, row in enumerate(rows):
        for key in family.keys(row):
            by_key.setdefault(key, []).append(index)
    return ld.fold_rows(family, spec, documents, by_key, rows, ld.dwell_seconds(rows), version,
                        "test")


def _served(documents: dict[str, dict], family) -> dict[str, dict]:
    return {doc_id: {k: v for k, v in doc.items() if k in family.spec.fields}
            for doc_id, doc in documents.items()}


def _expected(raw, family) -> dict[str, dict]:
    rows = [{k: json_value(v) for k, v in row.items()}
            for row in DAILY[family](raw).toArrow().to_pylist()]
    return {family.spec.doc_id(row): row for row in rows}


@pytest.mark.parametrize("family", ld.FAMILIES, ids=lambda f: f.spec.table)
def test_two_refreshes_fold_into_exactly_the_daily_table(commits, family):
    raw, first, second = commits
    documents = _fold(family, {}, first, 1)
    documents |= _fold(family, documents, second, 2)
    # At this size the sketches count exactly, and every page view's next one is in its commit.
    assert _served(documents, family) == _expected(raw, family)
    assert {doc["landing_version"] for doc in documents.values()} <= {1, 2}


@pytest.mark.parametrize("family", ld.FAMILIES, ids=lambda f: f.spec.table)
def test_a_repeated_refresh_folds_nothing_twice(commits, family):
    _, first, second = commits
    documents = _fold(family, {}, first, 1)
    documents |= _fold(family, documents, second, 2)
    # A refresh that failed after writing is repeated from its old cursor: rows of both commits
    # come again, and every document already includes them.
    assert _fold(family, documents, first + second, 2) == {}
    # A document written by the first commit only takes the second commit's rows.
    only_first = _fold(family, {}, first, 1)
    again = _fold(family, only_first, first + second, 2)
    assert _served(only_first | again, family) == _served(documents, family)


@pytest.mark.parametrize("family", ld.FAMILIES, ids=lambda f: f.spec.table)
def test_rows_fold_into_the_states_spark_computed_for_a_whole_day(spark, commits, family):
    raw, first, second = commits
    name = {ld.URL_POPULARITY_LIVE: live.URL_POPULARITY, ld.URL_COUNTRY_LIVE: live.URL_COUNTRY,
            ld.SESSIONS_LIVE: live.SESSIONS, ld.TRAFFIC_LIVE: live.TRAFFIC}[family]
    first_rows = raw.where(F.col("event_id").isin(sorted(FIRST)))
    states = live.whole_day_states(first_rows)[name].toArrow().to_pylist()
    [documents] = ld.whole_day_documents(family, family.spec, states, 1, "test").values()
    assert _served(documents, family) == _expected(first_rows, family)
    documents |= _fold(family, documents, second, 2)
    # u1 and s1 are in Spark's sketches of "/" in DE and in the folded rows: counted once.
    assert _served(documents, family) == _expected(raw, family)
