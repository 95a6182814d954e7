"""The live path on the real stack: an open day is refreshed from only the windows its new rows
fall in, a streaming run whose Spark server dies is followed by one that serves exactly what it
missed, a backfill of the day beside the stream leaves it exact, and once the day is made final
its indices equal a full recompute exactly."""

import dataclasses
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import orjson
import pandas as pd
import pytest
from elasticsearch import helpers

from clickstream_dagster.assets.analytics import ANALYTICS_ASSETS
from clickstream_dagster.assets.ingest import clickstream_landing
from clickstream_dagster.assets.lake import raw_clickstream
from clickstream_dagster.assets.live import live_indices
from clickstream_dagster.assets.serving import SERVING_ASSETS
from clickstream_dagster.checks.quality import QUALITY_CHECKS
from clickstream_dagster.definitions import build_resources
from clickstream_dagster.live.refresh import LiveRefresh
from clickstream_dagster.resources import ElasticsearchResource
from clickstream_dagster.sensors import landing_partitions_sensor
from clickstream_dagster.serving.indices import (
    ANOMALIES,
    BOTS,
    FUNNEL,
    SERVED,
    SESSIONS,
    URL_COUNTRY,
    URL_POPULARITY,
    write_live,
)
from config.clients import elasticsearch_client
from simulator.population import CRAWLERS
from simulator.timeline import GeneratorConfig, stream
from spark.analytics import anomalies, transform
from spark.analytics.daily_tables import DEFAULT_MAX_EVENTS_PER_SECOND
from spark.delta_lake import read_days, table_created_s
from spark.session import SparkServerUnavailable
from tests.helpers import (
    create_topics,
    delete_topics,
    isolated_topics,
    kill_spark_server,
    remove_indices,
    send_messages,
    wait_until,
)

TODAY = datetime.now(UTC).date().isoformat()
# Three days back is closed whatever the close hour: late data for it goes to the partition sensor.
CLOSED_START = datetime.fromisoformat(TODAY).replace(tzinfo=UTC) - timedelta(days=3)
CLOSED_DAY = CLOSED_START.date().isoformat()
CONFIG = GeneratorConfig(events=8_000, seed=5, days=1, duplicate_ratio=0.03, malformed_ratio=0.01,
                         start=datetime.fromisoformat(TODAY).replace(tzinfo=UTC))
# What a daily run of the day materializes: its final tables and indices, checked. The daily job's
# anomaly and served-count checks write nothing, and have modules of their own.
DAILY = [raw_clickstream, *ANALYTICS_ASSETS, *SERVING_ASSETS, *QUALITY_CHECKS]
# HyperLogLog's distinct counts on the live url x country documents (2^12 registers).
HLL_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def live_day(stack, tmp_path_factory):
    settings = dataclasses.replace(isolated_topics(stack),
                                   lake_dir=str(tmp_path_factory.mktemp("live-lake")))
    create_topics(stack, {settings.topic: 4, settings.dlq_topic: 1})
    resources = build_resources(settings)
    prefix = f"test-{settings.topic}"
    resources["elasticsearch"] = ElasticsearchResource(url=settings.elasticsearch_url,
                                                       index_prefix=prefix)
    messages = list(stream(CONFIG))
    yield settings, resources, dg.DagsterInstance.ephemeral(), messages
    delete_topics(stack, [settings.topic, settings.dlq_topic])
    client = resources["elasticsearch"].client()
    remove_indices(client, prefix, [spec.with_prefix(prefix).name for spec in SERVED])


def _ingest(resources, instance) -> dict:
    result = dg.materialize([clickstream_landing, live_indices], resources=resources,
                            instance=instance)
    assert result.success
    return {k: v.value for k, v in
            result.asset_materializations_for_node("live_indices")[0].metadata.items()}


def _recompute(spark, resources, final: bool = False) -> dict[str, pd.DataFrame]:
    """The served tables from the whole day's landing rows, deduplicated, people only: the full
    recompute. Live documents know the bots by their agents (the simulator's crawlers); a final
    day also the users faster than a person, found over the whole day."""
    landing = read_days(spark, resources["lake"].landing, [TODAY])
    day = transform.deduplicate_day(landing)
    if final:
        day = transform.flag_fast_users(day, landing, DEFAULT_MAX_EVENTS_PER_SECOND)
    every_row, day = day, transform.analytics_rows(day)
    served = {URL_POPULARITY.name: transform.url_popularity_5m(day).toPandas(),
              URL_COUNTRY.name: transform.url_country_daily(day).toPandas(),
              SESSIONS.name: transform.user_sessions(day).toPandas(),
              # A lake of one day has no trailing days: every window is counted, none judged.
              ANOMALIES.name: anomalies.score_windows(anomalies.window_sessions(day),
                                                      [TODAY]).toPandas()}
    if final:  # the live path serves none of these
        served[FUNNEL.name] = transform.conversion_funnel(day).toPandas()
        served[BOTS.name] = transform.bot_traffic(every_row).toPandas()
    return served


def _served(resources, spec) -> pd.DataFrame:
    client = resources["elasticsearch"].client()
    served = spec.with_prefix(resources["elasticsearch"].index_prefix)
    client.indices.refresh(index=served.index_for(TODAY))
    docs = [hit["_source"] for hit in helpers.scan(client, index=served.index_for(TODAY))]
    return pd.DataFrame(docs)


def _aligned(served: pd.DataFrame, expected: pd.DataFrame, spec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both sides keyed by the document id fields, with the served values in the lake's types."""
    keys = [f for f in spec.id_fields if f != "event_date"]
    expected = expected.drop(columns="event_date").copy()
    served = served[[c for c in expected.columns]].copy()
    for column in expected.columns:
        if pd.api.types.is_datetime64_any_dtype(expected[column]):
            served[column] = pd.to_datetime(served[column], format="ISO8601", utc=True)
            expected[column] = pd.to_datetime(expected[column], utc=True)
        else:  # a served null is None; in the lake's float and string columns it reads as NaN
            served[column] = served[column].astype(expected[column].dtype)
    return (served.sort_values(keys).reset_index(drop=True),
            expected.sort_values(keys).reset_index(drop=True))


def _assert_live_matches(spark, resources) -> None:
    expected = _recompute(spark, resources)
    for spec in (URL_POPULARITY, SESSIONS):  # merged exactly from their window parts
        served = _served(resources, spec)
        assert not served["final"].any()
        got, want = _aligned(served, expected[spec.name], spec)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
    got, want = _aligned(_served(resources, URL_COUNTRY), expected[URL_COUNTRY.name], URL_COUNTRY)
    assert got[["url", "country", "events", "page_views"]].astype(str).equals(
        want[["url", "country", "events", "page_views"]].astype(str))
    for distinct in ("unique_users", "sessions"):
        error = (got[distinct] - want[distinct]).abs() / want[distinct]
        assert error.max() <= HLL_TOLERANCE, (distinct, error.max())
    # Traffic windows: exact sessions wherever a row fell; a window with none is served only once
    # it has ended (the final grid's zeros). A final load's windows to come are gone.
    served = _served(resources, ANOMALIES)
    assert not served["final"].any() and served["score"].isna().all()
    empty = served[served.sessions == 0]
    assert (pd.to_datetime(empty.window_end, utc=True) <= pd.Timestamp.now(tz="UTC")).all()
    got, want = _aligned(served, expected[ANOMALIES.name], ANOMALIES)
    columns = ["window_start", "dimension", "segment", "sessions"]
    pd.testing.assert_frame_equal(got[got.sessions > 0][columns].reset_index(drop=True),
                                  want[want.sessions > 0][columns].reset_index(drop=True),
                                  check_dtype=False)


def test_open_day_refreshes_touch_only_new_windows_and_match_a_recompute(spark, live_day):
    settings, resources, instance, messages = live_day
    split = int(len(messages) * 0.6)
    send_messages(settings, messages[:split])
    first = _ingest(resources, instance)
    assert first["refresh"] == "whole open days" and first["new_rows"] > 0
    _assert_live_matches(spark, resources)

    # The rest of the day: sessions in progress at the split continue, duplicates of earlier
    # events arrive, and only the windows the new rows fall in are updated.
    send_messages(settings, messages[split:] + messages[:50])
    second = _ingest(resources, instance)
    assert second["refresh"] == "incremental"
    landed = read_days(spark, resources["lake"].landing, [TODAY]).count()
    assert 0 < second["new_rows"] < landed
    # Messages are in delivery order, so the new rows cover the later windows plus whatever
    # windows the 50 re-sent duplicates fall in, never all of them.
    all_windows = len(_recompute(spark, resources)[URL_POPULARITY.name].window_start.unique())
    assert second["windows_updated"][TODAY] < all_windows
    _assert_live_matches(spark, resources)

    # A refresh that failed after writing some documents is repeated from the old cursor: every
    # document already includes those landing commits, so nothing counts twice.
    # It runs at the time the second one did, so no traffic window has ended since.
    at = datetime.fromisoformat(second["windows_judged_through"])
    repeat = LiveRefresh(logging.getLogger(__name__), "repeat", instance,
                         resources["spark"].get_session(), resources["lake"],
                         resources["elasticsearch"], now=lambda: at)
    repeat.cursor = {"landing_version": first["landing_version"], "open_days": [TODAY],
                     "windows_judged_through": first["windows_judged_through"]}
    repeated = repeat()
    assert repeated["new_rows"] == second["new_rows"] and not any(repeated["documents"].value.values())
    _assert_live_matches(spark, resources)

    # Nothing new: nothing is merged, and the cursor stays.
    third = _ingest(resources, instance)
    assert third["new_rows"] == 0 and third["landing_version"] == second["landing_version"]


def test_an_overlapping_older_refresh_never_overwrites_newer_documents(live_day):
    """Of two refreshes that overlap (a streaming run's and one started by hand), the one that
    includes more landing commits wins, whichever writes last."""
    _, resources, _, _ = live_day
    client = resources["elasticsearch"].client()
    created = table_created_s(resources["spark"].get_session(), resources["lake"].landing)
    spec = SESSIONS.with_prefix(resources["elasticsearch"].index_prefix)
    newest = max(helpers.scan(client, index=spec.index_for(TODAY)),
                 key=lambda hit: hit["_source"]["landing_version"])
    current = newest["_source"]
    older = {**current, "events": current["events"] + 1_000,
             "landing_version": current["landing_version"] - 1}
    assert write_live(client, spec, TODAY, {newest["_id"]: older},
                      landing_created_s=created).superseded == 1
    assert client.get(index=spec.index_for(TODAY), id=newest["_id"])["_source"] == current
    # The same landing version again (a repeated refresh) is written.
    write_live(client, spec, TODAY, {newest["_id"]: {**current, "materialization": "repeat"}},
               landing_created_s=created)
    assert client.get(index=spec.index_for(TODAY),
                      id=newest["_id"])["_source"]["materialization"] == "repeat"


def test_a_recreated_landing_table_outranks_the_documents_of_the_old_one(stack):
    """Landing versions start again when the landing table is recreated; its documents still win
    over the old table's, because a document's version begins with its table's creation time."""
    client = elasticsearch_client(stack)
    spec = SESSIONS.with_prefix(f"test-recreated-{uuid.uuid4().hex[:8]}")
    old_table, new_table = 1_790_000_000, 1_790_000_600
    doc = {"event_date": TODAY, "session_id": "s1", "final": False, "events": 9}
    write_live(client, spec, TODAY, {"s1": {**doc, "landing_version": 9}},
               landing_created_s=old_table)
    # The old table's own older version loses; the new table's first versions win.
    stale = write_live(client, spec, TODAY, {"s1": {**doc, "landing_version": 4, "events": 1}},
                       landing_created_s=old_table)
    fresh = write_live(client, spec, TODAY, {"s1": {**doc, "landing_version": 2, "events": 2}},
                       landing_created_s=new_table)
    assert (stale.superseded, fresh.superseded) == (1, 0)
    assert client.get(index=spec.index_for(TODAY), id="s1")["_source"]["events"] == 2
    remove_indices(client, spec.name, [spec.name])


def _newest_refresh(instance) -> int:
    """The storage id of the newest `live_indices` materialization (0: none yet)."""
    records = instance.fetch_materializations(live_indices.key, limit=1).records
    return records[0].storage_id if records else 0


def _live_refreshes_after(instance, storage_id: int) -> list:
    return [r for r in instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=live_indices.key, after_storage_id=storage_id),
        limit=100).records if r.asset_materialization.metadata["new_rows"].value]


def _streaming_run(resources, instance, outcome: dict, key: str, **config) -> threading.Thread:
    """A streaming run of the live path (`config`: the ingest's run config) on a thread of its own,
    not yet started; its result lands in `outcome[key]`."""
    run_config = {"ops": {"clickstream_landing": {"config": config}}}
    return threading.Thread(target=lambda: outcome.update({key: dg.materialize(
        [clickstream_landing, live_indices], resources=resources, instance=instance,
        run_config=run_config, raise_on_error=False)}))


def test_a_streaming_run_serves_each_micro_batch_while_it_runs(spark, live_day):
    """The Kafka sensor's runs: one query lands micro-batches for minutes, and each one that brings
    rows reaches Elasticsearch during the run; late data for a closed day reaches the partition
    sensor during the run too, and the run ends by itself once the topic is quiet."""
    settings, resources, instance, _ = live_day
    more = list(stream(dataclasses.replace(CONFIG, events=3_000, seed=6)))
    late = list(stream(dataclasses.replace(CONFIG, events=200, seed=7, duplicate_ratio=0,
                                           malformed_ratio=0, start=CLOSED_START)))
    before = _newest_refresh(instance)
    landed_before = instance.fetch_materializations(clickstream_landing.key, limit=1).records[0]
    outcome = {}
    runner = _streaming_run(resources, instance, outcome, "result", stream_seconds=300,
                            trigger_seconds=1, idle_seconds=10, report_seconds=1)
    started = time.monotonic()
    runner.start()
    try:
        for chunk in (more[:1_500], more[1_500:] + late):
            refreshed = len(_live_refreshes_after(instance, before))
            send_messages(settings, chunk)
            # Each chunk is served by a refresh of the run in flight, before the next is sent.
            deadline = time.monotonic() + 90
            while len(_live_refreshes_after(instance, before)) == refreshed:
                assert runner.is_alive() and time.monotonic() < deadline, "no live refresh"
                time.sleep(0.5)
        # The closed day is reported while the run goes on, and the partition sensor asks for it.
        deadline = time.monotonic() + 60
        while CLOSED_DAY not in _changed_days(instance, landed_before.storage_id):
            assert runner.is_alive() and time.monotonic() < deadline, "late day not reported"
            time.sleep(0.5)
        requests = landing_partitions_sensor(dg.build_sensor_context(instance=instance)).run_requests
        requested = {r.partition_key for r in requests}
        assert CLOSED_DAY in requested and TODAY not in requested
        assert runner.is_alive(), "the run ended before the check; raise stream_seconds"
    finally:
        runner.join(timeout=300)
    result = outcome["result"]
    assert result.success
    assert time.monotonic() - started < 300, "the run did not end on a quiet topic"
    # Every micro-batch is reported exactly once over the run's several reports.
    reports = [r.asset_materialization.metadata for r in instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=clickstream_landing.key,
                              after_storage_id=landed_before.storage_id), limit=100).records]
    assert len(reports) >= 2
    assert sum(m["records_consumed"].value for m in reports) == len(more) + len(late)
    # (a session that starts late in the closed day may end on the next, also closed)
    assert sum(rows for m in reports for day, rows in m["rows_per_event_date"].value.items()
               if day < TODAY) == len(late)
    refreshes = _live_refreshes_after(instance, before)
    assert {r.run_id for r in refreshes} == {result.run_id} and len(refreshes) >= 2
    _assert_live_matches(spark, resources)


def test_a_streaming_run_serves_a_first_micro_batch_that_outlasts_its_idle_time(live_day):
    """Quiet time counts only once the query runs and no micro-batch is in flight: a backlog's
    first batch takes longer than a short idle time, and is still served by the run itself."""
    settings, resources, instance, _ = live_day
    sent = list(stream(dataclasses.replace(CONFIG, events=2_000, seed=8, duplicate_ratio=0,
                                           malformed_ratio=0)))
    send_messages(settings, sent)
    crawlers = {agent for *_, agent, _ in CRAWLERS}
    people = sum(orjson.loads(m.value)["device"]["user_agent"] not in crawlers for m in sent)
    result = dg.materialize([clickstream_landing, live_indices], resources=resources,
                            instance=instance, run_config={"ops": {"clickstream_landing": {"config": {
                                "stream_seconds": 120, "trigger_seconds": 1, "idle_seconds": 1}}}})
    in_run = [m for m in result.asset_materializations_for_node("clickstream_landing")
              if m.asset_key == live_indices.key and m.metadata["new_rows"].value]
    assert 0 < people < 2_000  # the live documents count people: the crawlers' rows stay out
    assert sum(m.metadata["new_rows"].value for m in in_run) == people


@pytest.mark.timeout(600)
def test_after_its_spark_server_dies_the_live_documents_equal_a_recompute(spark, own_server):
    """The server is SIGKILLed under a streaming run just as more traffic arrives; the run fails
    naming it, the supervisor starts it again, and the next run serves the rows that landed
    before the kill and were never refreshed, the rows in flight and those sent since."""
    resources = build_resources(own_server)
    prefix = f"test-{own_server.topic}"
    resources["elasticsearch"] = ElasticsearchResource(url=own_server.elasticsearch_url,
                                                       index_prefix=prefix)
    instance = dg.DagsterInstance.ephemeral()
    sent = list(stream(dataclasses.replace(CONFIG, events=6_000, seed=9)))
    outcome = {}
    runner = _streaming_run(resources, instance, outcome, "result", stream_seconds=300,
                            trigger_seconds=1, idle_seconds=60)
    try:
        send_messages(own_server, sent[:2_000])
        runner.start()
        wait_until(lambda: _live_refreshes_after(instance, 0), 180, "the first live refresh")
        send_messages(own_server, sent[2_000:4_000])
        time.sleep(2)  # one trigger: the run has taken some of them
        restarted = kill_spark_server(own_server)
        runner.join(180)
        assert not runner.is_alive(), "the streaming run outlived its server by 3 minutes"
        failed = outcome["result"]
        assert not failed.success
        errors = [e.event_specific_data.error.to_string() for e in failed.all_events
                  if e.is_step_failure]
        assert any(SparkServerUnavailable.__name__ in e and own_server.spark_remote in e
                   for e in errors), errors
        send_messages(own_server, sent[4_000:])
        wait_until(restarted, 180, "the supervisor to start the server again")
        assert dg.materialize([clickstream_landing, live_indices], resources=resources,
                              instance=instance).success
        _assert_live_matches(spark, resources)
    finally:
        runner.join(300)
        remove_indices(resources["elasticsearch"].client(), prefix,
                       [spec.with_prefix(prefix).name for spec in SERVED])


def _changed_days(instance, after_storage_id: int) -> set[str]:
    return {day for r in instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=clickstream_landing.key, after_storage_id=after_storage_id),
        limit=100).records for day in r.asset_materialization.metadata["changed_partitions"].value}


def test_a_backfill_of_today_beside_the_stream_leaves_the_served_counts_exact(spark, live_day):
    """A backfill over today (from the UI: the daily lane, not the ingest's) runs beside a
    streaming run: its final load replaces today's documents while the stream refreshes them. The
    next refresh finds the final documents, which have no live state, and computes the day whole,
    so the served counts equal a recompute again."""
    settings, resources, instance, _ = live_day
    traffic = list(stream(dataclasses.replace(CONFIG, events=4_000, seed=10)))
    before = _newest_refresh(instance)
    outcome = {}
    runner = _streaming_run(resources, instance, outcome, "stream", stream_seconds=600,
                            trigger_seconds=1, idle_seconds=30)
    backfill = threading.Thread(target=lambda: outcome.update(backfill=dg.materialize(
        DAILY, partition_key=TODAY, resources=resources, instance=instance,
        raise_on_error=False)))
    runner.start()
    try:
        send_messages(settings, traffic[:1_000])
        wait_until(lambda: _live_refreshes_after(instance, before), 120, "a live refresh")
        during = _newest_refresh(instance)
        backfill.start()
        # Traffic trickles in while the backfill runs, so the stream (idle after 30 s) refreshes
        # beside it all the way to its final load, and is still there after it.
        sent, beside = 1_000, False
        while backfill.is_alive():
            if sent < 3_500:
                send_messages(settings, traffic[sent:sent + 25])
                sent += 25
            time.sleep(5)
            beside = beside or (backfill.is_alive() and bool(_live_refreshes_after(instance, during)))
        assert beside, "the stream refreshed nothing while the backfill ran"
        assert outcome["backfill"].success
        # Its final load replaced the day's live documents (the stream may have computed the day
        # whole again since: that is what comes next).
        sessions_index = SERVING_ASSETS[SERVED.index(SESSIONS)]
        [load] = outcome["backfill"].asset_materializations_for_node(sessions_index.op.name)
        assert load.metadata["documents"].value > 0, "no final load replaced the day"
        assert load.metadata["replaced_indices"].value, "no final load replaced the day"
        after = _newest_refresh(instance)
        send_messages(settings, traffic[sent:])
        wait_until(lambda: _live_refreshes_after(instance, after), 120,
                   "a live refresh after the backfill")
    finally:
        runner.join(300)
        if backfill.is_alive():
            backfill.join(600)
    assert outcome["stream"].success
    _assert_live_matches(spark, resources)


def test_a_final_day_serves_exactly_the_full_recompute(spark, live_day):
    _, resources, instance, _ = live_day
    assert dg.materialize(DAILY, partition_key=TODAY, resources=resources, instance=instance).success
    expected = _recompute(spark, resources, final=True)
    for spec in SERVED:
        served = _served(resources, spec)
        assert served["final"].all(), f"live documents left in {spec.name}"
        got, want = _aligned(served, expected[spec.name], spec)
        pd.testing.assert_frame_equal(got, want, check_dtype=False)
