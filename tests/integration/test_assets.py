"""Dagster assets end to end on the real stack, checked against an independent pandas computation."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import dagster as dg
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from elasticsearch import helpers
from pyspark.sql import functions as F

from clickstream_dagster.assets.analytics import ANALYTICS_ASSETS, url_country_daily, user_sessions
from clickstream_dagster.assets.ingest import clickstream_landing
from clickstream_dagster.assets.lake import raw_clickstream
from clickstream_dagster.assets.serving import SERVING_ASSETS
from clickstream_dagster.checks.quality import QUALITY_CHECKS
from clickstream_dagster.checks.serving import SERVING_CHECKS
from clickstream_dagster.definitions import build_resources
from clickstream_dagster.resources import ElasticsearchResource
from clickstream_dagster.serving.indices import (
    LIVE_SUFFIX,
    SERVED,
    SESSIONS,
    URL_COUNTRY,
    IndexingError,
    load_day,
)
from simulator.population import CRAWLERS
from simulator.producer import produce
from simulator.timeline import LATE, VALID, GeneratorConfig, stream
from spark.analytics.daily_tables import DEFAULT_MAX_EVENTS_PER_SECOND
from spark.delta_lake import last_commit, read_days
from spark.ingest.transform import LAKE_COLUMNS
from tests.helpers import create_topics, delete_topics, isolated_topics, remove_indices

CONFIG = GeneratorConfig(events=20_000, seed=77, start=datetime(2026, 6, 1, tzinfo=UTC), days=2,
                         duplicate_ratio=0.02, late_ratio=0.02, max_lateness_s=4 * 3600,
                         malformed_ratio=0.02)
DAY1, DAY2 = "2026-06-01", "2026-06-02"
DAILY = [raw_clickstream, *ANALYTICS_ASSETS]


def expected_events() -> pd.DataFrame:
    """The generator's own record of the unique valid events, flattened with pandas, with the
    bots the enrichment must find: the simulator's crawlers, and users faster than a person."""
    rows = []
    for message in stream(CONFIG):
        if message.kind not in (VALID, LATE):
            continue
        e = orjson.loads(message.value)
        rows.append({"event_id": e["event_id"], "event_type": e["event_type"],
                     "event_ts": pd.Timestamp(e["event_ts"]), "user_id": e["user"]["user_id"],
                     "session_id": e["user"]["session_id"], "url": e["page"]["url"],
                     "country": e["geo"]["country"], "user_agent": e["device"]["user_agent"],
                     "campaign": (e["campaign"] or {}).get("name")})
    frame = pd.DataFrame(rows)
    frame["event_date"] = frame["event_ts"].dt.strftime("%Y-%m-%d")
    per_second = frame.groupby(["event_date", "user_id", frame.event_ts.dt.floor("s")]).event_id.nunique()
    fast = set(per_second[per_second > DEFAULT_MAX_EVENTS_PER_SECOND].index.droplevel(2))
    crawler = frame.user_agent.isin({agent for *_, agent, _ in CRAWLERS})
    users = pd.MultiIndex.from_arrays([frame.event_date, frame.user_id])
    frame["is_bot"] = crawler | users.isin(list(fast))
    frame["url"] = frame["url"].str.replace(r"[?#].*$", "", regex=True)
    return frame


@pytest.fixture(scope="module")
def pipeline(stack, spark, tmp_path_factory):
    settings = dataclasses.replace(isolated_topics(stack),
                                   lake_dir=str(tmp_path_factory.mktemp("lake")))
    create_topics(stack, {settings.topic: 6, settings.dlq_topic: 1})
    produce(CONFIG, settings, progress=False)
    resources = build_resources(settings)
    prefix = f"test-{settings.topic}"
    resources["elasticsearch"] = ElasticsearchResource(url=settings.elasticsearch_url,
                                                       index_prefix=prefix)
    landing = dg.materialize([clickstream_landing], resources=resources)
    assert landing.success
    yield settings, resources, landing
    delete_topics(stack, [settings.topic, settings.dlq_topic])
    client = resources["elasticsearch"].client()
    remove_indices(client, prefix, [spec.with_prefix(prefix).name for spec in SERVED])


SERVING_DAY1 = [*DAILY, *SERVING_ASSETS, *SERVING_CHECKS]


@pytest.fixture(scope="module")
def day1(pipeline) -> dg.ExecuteInProcessResult:
    """Day 1 materialized once, as a daily run does it: the lake's tables, their quality checks,
    the indices and their served-count checks. Tests that only read it share it; a test that
    changes it puts it back."""
    _, resources, _ = pipeline
    result = dg.materialize([*SERVING_DAY1, *QUALITY_CHECKS], partition_key=DAY1,
                            resources=resources)
    assert result.success
    return result


def _read(spark, resources, table: str, day: str) -> pd.DataFrame:
    path = resources["lake"].raw if table == "raw" else resources["lake"].analytics(table)
    return read_days(spark, path, [day]).drop("event_date").toPandas()


def test_landing_reports_exactly_the_changed_partitions(pipeline):
    _, _, landing = pipeline
    metadata = landing.asset_materializations_for_node("clickstream_landing")[0].metadata
    assert metadata["changed_partitions"].value == [DAY1, DAY2]
    assert metadata["records_consumed"].value == CONFIG.events
    # The UI shows the landing table's columns as Delta stores them.
    columns = {c.name: c.type for c in metadata["dagster/column_schema"].value.columns}
    assert list(columns) == LAKE_COLUMNS
    assert (columns["event_ts"], columns["event_date"]) == ("timestamp", "date")


def test_partition_matches_an_independent_computation(spark, pipeline, day1):
    _, resources, _ = pipeline
    result = day1
    # Each table reports the columns it wrote; the analytics ones also their lineage.
    for asset in DAILY:
        (materialization,) = result.asset_materializations_for_node(asset.node_def.name)
        schema = materialization.metadata["dagster/column_schema"].value
        lake = resources["lake"]
        path = lake.raw if asset is raw_clickstream else lake.analytics(asset.key.to_user_string())
        assert {c.name for c in schema.columns} == set(read_days(spark, path, [DAY1]).columns)
        if asset is not raw_clickstream:
            lineage = materialization.metadata["dagster/column_lineage"].value
            assert set(lineage.deps_by_column) == {c.name for c in schema.columns}
    events = expected_events()
    everyone = events[events.event_date == DAY1]

    raw = _read(spark, resources, "raw", DAY1)
    assert len(raw) == len(everyone) and raw.event_id.is_unique
    assert set(raw.event_id) == set(everyone.event_id)
    # Bots stay in the lake, flagged; every simulated address is in its user's country.
    flagged = raw.set_index("event_id").is_bot.sort_index()
    assert flagged.tolist() == everyone.set_index("event_id").is_bot.sort_index().tolist()
    assert 0 < flagged.sum() < len(flagged)
    assert (raw.ip_country == raw.country).all()
    (compacted,) = result.asset_materializations_for_node("raw_clickstream")
    assert compacted.metadata["ip_country_mismatches"].value == {DAY1: 0}
    assert raw.browser_family.notna().all() and raw.referrer_class.notna().all()
    day = everyone[~everyone.is_bot]  # what the analytics count

    got = _read(spark, resources, "url_country_daily", DAY1).set_index(["url", "country"]).sort_index()
    views = day[day.event_type == "page_view"].sort_values(["session_id", "event_ts", "event_id"])
    views = views.assign(dwell=(views.groupby("session_id").event_ts.shift(-1) - views.event_ts)
                         .dt.total_seconds())
    want = day.groupby(["url", "country"]).agg(
        events=("event_id", "size"), unique_users=("user_id", "nunique"),
        sessions=("session_id", "nunique")).join(
        views.groupby(["url", "country"]).agg(page_views=("event_id", "size"),
                                              avg_time_on_page_s=("dwell", "mean"))).sort_index()
    want["page_views"] = want["page_views"].fillna(0).astype("int64")
    assert list(got.index) == list(want.index)
    for column in ("events", "page_views", "unique_users", "sessions"):
        assert got[column].astype("int64").tolist() == want[column].tolist(), column
    pd.testing.assert_series_equal(got["avg_time_on_page_s"].astype(float),
                                   want["avg_time_on_page_s"], check_names=False, check_exact=False,
                                   atol=2e-3)  # Spark rounds to 3 decimals half-up

    sessions = _read(spark, resources, "user_sessions", DAY1)
    assert len(sessions) == day.session_id.nunique()
    assert sessions.events.sum() == len(day)
    # First touch: each session's campaign is its first event's.
    first = day.sort_values(["event_ts", "event_id"]).groupby("session_id").head(1) \
        .set_index("session_id").campaign
    got_campaign = sessions.set_index("session_id").campaign.sort_index()
    assert got_campaign.fillna("-").tolist() == first.sort_index().fillna("-").tolist()
    assert sessions.channel.notna().all() and sessions.browser.notna().all()


def test_rematerializing_a_partition_gives_identical_output(spark, pipeline, day1):
    _, resources, _ = pipeline
    tables = ["raw", "url_country_daily", "user_sessions", "url_popularity_5m"]
    before = {t: _read(spark, resources, t, DAY1) for t in tables}
    assert dg.materialize(DAILY, partition_key=DAY1, resources=resources).success
    for table in tables:
        after = _read(spark, resources, table, DAY1)
        key = list(after.columns[:3])
        pd.testing.assert_frame_equal(before[table].sort_values(key).reset_index(drop=True),
                                      after.sort_values(key).reset_index(drop=True))


def test_a_two_day_range_runs_as_one_spark_job(spark, pipeline):
    _, resources, _ = pipeline
    result = dg.materialize(
        [raw_clickstream, url_country_daily, user_sessions], resources=resources,
        tags={"dagster/asset_partition_range_start": DAY1, "dagster/asset_partition_range_end": DAY2},
    )
    assert result.success
    materialized = result.asset_materializations_for_node("raw_clickstream")
    assert sorted(m.partition for m in materialized) == [DAY1, DAY2]
    events = expected_events()
    for day in (DAY1, DAY2):
        assert len(_read(spark, resources, "raw", day)) == (events.event_date == day).sum()


def _es(settings, resources):
    return resources["elasticsearch"].client()


def test_indices_hold_exactly_the_lake_rows_and_reruns_replace_them(spark, pipeline, day1):
    settings, resources, _ = pipeline
    result = day1
    client = _es(settings, resources)
    prefix = resources["elasticsearch"].index_prefix
    # The served count, visible in the UI as a check of each index asset.
    counts = {e.asset_key.to_user_string(): e for e in result.get_asset_check_evaluations()
              if e.check_name == "served_documents_match_table"}
    assert set(counts) == {asset.key.to_user_string() for asset in SERVING_ASSETS}
    for spec, asset in zip(SERVED, SERVING_ASSETS, strict=True):
        evaluation = counts[asset.key.to_user_string()]
        rows = len(_read(spark, resources, spec.table, DAY1))
        assert evaluation.passed
        assert evaluation.metadata["served_documents"].value == {DAY1: rows}
        assert evaluation.metadata["table_rows"].value == {DAY1: rows}
    first, physical = {}, {}
    for spec in SERVED:
        served = spec.with_prefix(prefix)
        index = served.index_for(DAY1)
        assert client.count(index=index)["count"] == len(_read(spark, resources, spec.table, DAY1))
        # The day's alias and the family alias both lead to the one index that holds the day.
        (physical[spec.name],) = client.indices.get_alias(name=index)
        assert physical[spec.name] in client.indices.get_alias(name=served.alias)
        first[spec.name] = {h["_id"] for h in helpers.scan(client, index=index, _source=False)}

    events = expected_events()
    day = events[(events.event_date == DAY1) & ~events.is_bot]
    url_country = URL_COUNTRY.with_prefix(prefix)
    assert client.count(index=url_country.alias)["count"] == day.groupby(["url", "country"]).ngroups
    home_us = client.get(index=url_country.index_for(DAY1),
                         id=f"{DAY1}|https://shop.example.com/|US")["_source"]
    want = day[(day.url == "https://shop.example.com/") & (day.country == "US")]
    assert (home_us["events"], home_us["unique_users"]) == (len(want), want.user_id.nunique())

    # A second materialization loads a new index and swaps to it: same ids, nothing duplicated
    # or left over, and the first index is gone.
    assert dg.materialize(SERVING_DAY1, partition_key=DAY1, resources=resources).success
    for spec in SERVED:
        index = spec.with_prefix(prefix).index_for(DAY1)
        again = {h["_id"] for h in helpers.scan(client, index=index, _source=False)}
        assert again == first[spec.name]
        (swapped,) = client.indices.get_alias(name=index)
        assert swapped != physical[spec.name]
        assert not client.indices.exists(index=physical[spec.name])


def test_the_served_count_check_fails_when_the_index_lost_a_document(spark, pipeline, day1):
    settings, resources, _ = pipeline
    sessions = SESSIONS.with_prefix(resources["elasticsearch"].index_prefix)
    client = _es(settings, resources)
    victim = next(helpers.scan(client, index=sessions.index_for(DAY1)))
    client.delete(index=sessions.index_for(DAY1), id=victim["_id"], refresh=True)
    try:
        _assert_the_sessions_check_finds_one_missing(spark, resources)
    finally:  # the day's other tests read the index whole
        client.index(index=sessions.index_for(DAY1), id=victim["_id"], document=victim["_source"],
                     refresh=True)


def _assert_the_sessions_check_finds_one_missing(spark, resources) -> None:
    (check,) = [c for c, spec in zip(SERVING_CHECKS, SERVED, strict=True) if spec is SESSIONS]
    # The check alone, as the UI's "Execute check" runs it on the day: no index is loaded again.
    only_the_check = dg.define_asset_job("served_count_only", selection=dg.AssetSelection.checks(check))
    definitions = dg.Definitions(assets=[*DAILY, *SERVING_ASSETS], asset_checks=[check],
                                 jobs=[only_the_check], resources=resources)
    result = definitions.resolve_job_def("served_count_only").execute_in_process(
        tags={"dagster/partition": DAY1}, raise_on_error=False)
    assert not result.get_asset_materialization_events()
    (evaluation,) = result.get_asset_check_evaluations()
    rows = len(_read(spark, resources, SESSIONS.table, DAY1))
    assert not evaluation.passed
    assert evaluation.metadata["served_documents"].value == {DAY1: rows - 1}
    assert evaluation.metadata["days_that_differ"].value == [DAY1]


def _url_country_rows(count: int) -> list[dict]:
    return [{"event_date": DAY1, "url": f"/p/{i}", "country": "DE", "events": str(i),
             "page_views": 0, "unique_users": 1, "sessions": 1, "avg_time_on_page_s": None}
            for i in range(count)]


@pytest.fixture
def scratch(pipeline):
    """An index family of its own for one load_day test: (client, spec), deleted afterwards."""
    settings, resources, _ = pipeline
    client = _es(settings, resources)
    spec = URL_COUNTRY.with_prefix(f"{resources['elasticsearch'].index_prefix}-{uuid.uuid4().hex[:6]}")
    yield client, spec
    remove_indices(client, spec.name, [spec.name])


def test_a_failed_load_fails_with_its_reasons_and_the_day_keeps_its_last_load(scratch):
    client, spec = scratch
    load_day(client, spec, DAY1, pa.Table.from_pylist(_url_country_rows(4)), "run-good")
    rows = _url_country_rows(10)
    rows[3]["events"] = "many"  # not a long; the other counts are numeric strings, which it takes
    with pytest.raises(IndexingError, match=r"1 of 10 documents were rejected") as error:
        load_day(client, spec, DAY1, pa.Table.from_pylist(rows), "run-bad1")
    assert f"id={DAY1}|/p/3|DE" in str(error.value) and "events" in str(error.value)
    # Readers never saw the failed load: the day still serves the earlier one, whole, and the
    # failed load's index is gone.
    day = spec.index_for(DAY1)
    assert client.count(index=day)["count"] == client.count(index=spec.alias)["count"] == 4
    assert sorted(h["_source"]["url"] for h in helpers.scan(client, index=day)) == \
        [f"/p/{i}" for i in range(4)]
    assert list(client.indices.get(index=f"{spec.name}-*")) == [f"{day}_run-good"]


def test_a_day_with_no_rows_never_silently_replaces_served_documents(scratch):
    client, spec = scratch
    day = spec.index_for(DAY1)
    load_day(client, spec, DAY1, pa.Table.from_pylist(_url_country_rows(3)), "run-full")
    empty = pa.Table.from_pylist(_url_country_rows(1)).slice(0, 0)
    with pytest.raises(IndexingError, match=r"0 rows for 2026-06-01, but .* serves 3 documents"):
        load_day(client, spec, DAY1, empty, "run-zero")
    assert client.count(index=day)["count"] == 3
    # Said on purpose, the day is emptied, and the report says so.
    report = load_day(client, spec, DAY1, empty, "run-none", allow_empty=True)
    assert (report.documents, report.replaced) == (0, [f"{day}_run-full"])
    assert client.count(index=day)["count"] == 0


def test_a_day_index_from_before_aliases_is_swapped_for_an_alias(scratch):
    client, spec = scratch
    day = spec.index_for(DAY1)
    client.indices.create(index=day, aliases={spec.alias: {}})  # how days were served before
    client.index(index=day, id="stale", document={"url": "/gone"}, refresh=True)
    load_day(client, spec, DAY1, pa.Table.from_pylist(_url_country_rows(2)), "run-swap")
    assert client.indices.get_alias(name=day) == {f"{day}_run-swap": {"aliases": {day: {}}}}
    assert list(client.indices.get_alias(name=spec.alias)) == [f"{day}_run-swap"]
    assert client.count(index=spec.alias)["count"] == 2


def test_a_load_deletes_the_indices_of_killed_loads_and_keeps_the_live_one(scratch):
    client, spec = scratch
    day = spec.index_for(DAY1)
    killed = [f"{day}_0badc0de", f"{day}_deadbeef"]  # loads that died before their swap
    for name in [*killed, f"{day}{LIVE_SUFFIX}"]:
        client.indices.create(index=name)
    load_day(client, spec, DAY1, pa.Table.from_pylist(_url_country_rows(3)), "run-tidy")
    assert sorted(client.indices.get(index=f"{day}_*")) == [f"{day}{LIVE_SUFFIX}", f"{day}_run-tidy"]
    assert client.count(index=day)["count"] == 3


def test_quality_checks_pass_on_good_data_with_gx_observations(day1):
    evaluations = day1.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} >= {"event_id_is_unique", "events_add_up_to_the_raw_rows",
                                                    "times_fall_inside_the_day", "has_rows"}
    assert all(e.passed for e in evaluations)
    unique = next(e for e in evaluations if e.check_name == "event_id_is_unique")
    observed = unique.metadata[DAY1].value[0]
    assert observed["observed_value"] == 1.0  # distinct event_ids / event_ids
    assert observed["expectation"] == "expect_column_proportion_of_unique_values_to_be_between"


def test_a_failed_check_blocks_the_aggregate_and_the_index(spark, pipeline):
    _, resources, _ = pipeline
    lake = resources["lake"]
    # Bad data in the landing zone: day-1 events filed under day 2, committed like any batch.
    before = last_commit(spark, lake.landing)["version"]
    misfiled = (read_days(spark, lake.landing, [DAY1]).limit(50)
                .withColumn("event_date", F.lit(DAY2).cast("date")))
    misfiled.write.format("delta").mode("append").save(lake.landing)
    index = URL_COUNTRY.with_prefix(resources["elasticsearch"].index_prefix).index_for(DAY2)
    try:
        result = dg.materialize(
            [raw_clickstream, url_country_daily, SERVING_ASSETS[0], *QUALITY_CHECKS[:2]],
            partition_key=DAY2, resources=resources, raise_on_error=False,
        )
        assert not result.success
        failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
        assert failed == {"times_fall_inside_the_day"}
        materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
        assert materialized == {"raw_clickstream"}  # nothing downstream of the failed gate
        assert not resources["elasticsearch"].client().indices.exists(index=index)
    finally:  # time travel takes the landing table back to before the injection
        spark.sql(f"RESTORE TABLE delta.`{lake.landing}` TO VERSION AS OF {before}")
