"""Traffic anomalies end to end: the simulator injects a spike and a drop into the last of five
days; the asset finds both and nothing else, the warning check alerts through the webhook, and the
index serves the scored windows. Served live, the same day alerts its spike while the spike's
window fills, and once the day is over every live window equals the final scoring's."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from elasticsearch import helpers

from clickstream_dagster.assets.analytics import traffic_anomalies
from clickstream_dagster.assets.ingest import clickstream_landing
from clickstream_dagster.assets.serving import SERVING_ASSETS
from clickstream_dagster.checks.anomalies import traffic_has_no_anomalies
from clickstream_dagster.definitions import build_resources
from clickstream_dagster.live.refresh import LiveRefresh
from clickstream_dagster.resources import ElasticsearchResource
from clickstream_dagster.serving.indices import ANOMALIES, SERVED
from simulator.producer import parse_shift
from simulator.timeline import VALID, GeneratorConfig, stream
from spark.delta_lake import read_days, replace_days
from spark.enrichment.user_agents import describe
from tests.helpers import (
    create_topics,
    delete_topics,
    isolated_topics,
    remove_indices,
    send_messages,
    webhook_server,
)

FIRST = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = [(FIRST + timedelta(days=n)).date().isoformat() for n in range(5)]
NORMAL_JUDGED, SHIFTED = DAYS[3], DAYS[4]  # the first days with three trailing days
SPIKE, DROP = "14:00,15m,4", "19:00,30m,0"
EVENTS_PER_DAY = 50_000  # about 50 sessions in an evening window: a drop to none is clear
ANOMALIES_INDEX = SERVING_ASSETS[SERVED.index(ANOMALIES)]


def _raw_day(day: str, seed: int, shifts: tuple = ()) -> pd.DataFrame:
    """One simulated day as the raw table's rows that traffic counting reads."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    config = GeneratorConfig(events=EVENTS_PER_DAY, seed=seed, start=start,
                             shifts=tuple(parse_shift(text, start) for text in shifts))
    rows = []
    for message in stream(config):
        if message.kind != VALID:
            continue
        event = orjson.loads(message.value)
        rows.append((event["event_id"], pd.Timestamp(event["event_ts"]).tz_localize(None),
                     event["user"]["session_id"], event["geo"]["country"],
                     describe(event["device"]["user_agent"]).is_bot))
    frame = pd.DataFrame(rows, columns=["event_id", "event_ts", "session_id", "country", "is_bot"])
    return frame[frame.event_ts.dt.date == date.fromisoformat(day)].assign(
        event_date=date.fromisoformat(day))


@pytest.fixture(scope="module")
def scored(stack, spark, tmp_path_factory):
    settings = dataclasses.replace(stack, lake_dir=str(tmp_path_factory.mktemp("lake")))
    resources = build_resources(settings)
    prefix = "test-anomalies"
    resources["elasticsearch"] = ElasticsearchResource(url=settings.elasticsearch_url,
                                                       index_prefix=prefix)
    days = pd.concat([_raw_day(day, seed=100 + n, shifts=(SPIKE, DROP) if day == SHIFTED else ())
                      for n, day in enumerate(DAYS)])
    # One chunk: a Spark Connect client sent only the first chunk of a chunked Arrow table.
    replace_days(spark.createDataFrame(pa.Table.from_pandas(days, preserve_index=False).combine_chunks()),
                 resources["lake"].raw, DAYS)
    with webhook_server() as (url, received), pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLICKSTREAM_ALERT_WEBHOOK_URL", url)
        results = {day: dg.materialize([traffic_anomalies, ANOMALIES_INDEX, traffic_has_no_anomalies],
                                       partition_key=day, resources=resources)
                   for day in (NORMAL_JUDGED, SHIFTED)}
    table = read_days(spark, resources["lake"].analytics("traffic_anomalies"),
                      [NORMAL_JUDGED, SHIFTED]).toPandas()
    yield results, table, resources, received
    remove_indices(resources["elasticsearch"].client(), prefix, [ANOMALIES.with_prefix(prefix).name])


def _during(table: pd.DataFrame, start: str, minutes: int) -> pd.Series:
    begin = pd.Timestamp(f"{SHIFTED} {start}")
    return (table.window_start >= begin) & (table.window_start < begin + pd.Timedelta(minutes=minutes))


def test_the_spike_and_the_drop_are_found_and_nothing_else(scored):
    _, table, _, _ = scored
    shifted = table[table.event_date.astype(str) == SHIFTED]
    found = shifted[shifted.is_anomaly]
    overall = found[found.dimension == "all"]
    # Sessions go on for minutes after they start: a spike's last windows, and a drop's first,
    # may or may not pass the threshold, so the shifts' windows get 15 minutes of slack.
    spike, drop = _during(found, "14:00", 15 + 15), _during(found, "19:00", 30 + 15)
    assert set(overall[_during(overall, "14:00", 15)].direction) == {"spike"}
    assert len(overall[_during(overall, "19:05", 25)]) == 5  # every window once the drop holds
    assert set(found[spike].direction) == {"spike"} and set(found[drop].direction) == {"drop"}
    assert found[~spike & ~drop].empty, "anomalies outside the injected shifts"
    assert (found.history_days == 4).all() and (found.score.abs() >= 5).all()


def test_a_normal_day_raises_no_alarm(scored):
    results, table, _, _ = scored
    normal = table[table.event_date.astype(str) == NORMAL_JUDGED]
    assert len(normal) == 288 * normal.segment.nunique()  # every window of every segment scored
    assert (normal.history_days == 3).all() and normal.score.notna().all()
    assert not normal.is_anomaly.any()
    (check,) = results[NORMAL_JUDGED].get_asset_check_evaluations()
    assert check.passed


def test_the_warning_check_alerts_through_the_webhook_and_the_index_still_loads(scored):
    results, table, resources, received = scored
    (check,) = results[SHIFTED].get_asset_check_evaluations()
    found = int(table[table.event_date.astype(str) == SHIFTED].is_anomaly.sum())
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["anomalies"].value == found
    assert check.metadata["alert_sent"].value is True
    (alert,) = received  # the normal day sent none
    assert alert["kind"] == "traffic_anomaly" and alert["anomalies"] == found
    assert {a["direction"] for a in alert["strongest"]} <= {"spike", "drop"}
    client = resources["elasticsearch"].client()
    served = ANOMALIES.with_prefix("test-anomalies")
    flagged = client.count(index=served.index_for(SHIFTED), query={"term": {"is_anomaly": True}})
    assert flagged["count"] == found


@pytest.fixture(scope="module")
def live_shifted(stack, spark, scored):
    """The shifted day live, on the lake whose raw days `scored` wrote: its events go through
    Kafka and the ingest in two parts, refreshed at 14:04 and again after midnight."""
    _, _, resources, _ = scored
    settings = dataclasses.replace(isolated_topics(stack), lake_dir=resources["lake"].root)
    create_topics(stack, {settings.topic: 2, settings.dlq_topic: 1})
    prefix = "test-anomalies-live"
    live_resources = {**build_resources(settings), "elasticsearch": ElasticsearchResource(
        url=settings.elasticsearch_url, index_prefix=prefix)}
    start = datetime.fromisoformat(SHIFTED).replace(tzinfo=UTC)
    config = GeneratorConfig(events=EVENTS_PER_DAY, seed=100 + DAYS.index(SHIFTED), start=start,
                             shifts=tuple(parse_shift(text, start) for text in (SPIKE, DROP)))
    messages = [m for m in stream(config) if m.kind == VALID]
    early = start + timedelta(hours=14, minutes=4)
    before = [m for m in messages if datetime.fromisoformat(orjson.loads(m.value)["event_ts"]) < early]
    instance = dg.DagsterInstance.ephemeral()
    clock = [early + timedelta(seconds=30)]
    refresh = LiveRefresh(logging.getLogger("live"), "test", instance, spark, live_resources["lake"],
                          live_resources["elasticsearch"], now=lambda: clock[0])
    refreshes = []
    with webhook_server() as (url, received), pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLICKSTREAM_ALERT_WEBHOOK_URL", url)
        for part, now in ((before, clock[0]),
                          (messages[len(before):], start + timedelta(days=1, minutes=1))):
            send_messages(settings, part)
            assert dg.materialize([clickstream_landing], resources=live_resources,
                                  instance=instance).success
            clock[0] = now
            refreshes.append((refresh(), list(received)))
    yield refreshes, live_resources
    delete_topics(stack, [settings.topic, settings.dlq_topic])
    remove_indices(live_resources["elasticsearch"].client(), prefix,
                   [spec.with_prefix(prefix).name for spec in SERVED])


def _live_windows(resources) -> pd.DataFrame:
    client = resources["elasticsearch"].client()
    index = ANOMALIES.with_prefix(resources["elasticsearch"].index_prefix).index_for(SHIFTED)
    client.indices.refresh(index=index)
    return pd.DataFrame([hit["_source"] for hit in helpers.scan(client, index=index)])


def test_a_spike_is_alerted_live_within_minutes_of_its_start(live_shifted):
    refreshes, _ = live_shifted
    (metadata, alerts), _ = refreshes
    assert metadata["anomalies_alerted"] >= 1
    (alert,) = alerts
    assert alert["kind"] == "traffic_anomaly" and alert["live"] is True
    # At 14:04:30 the 14:00 window is still filling: a spike, and no drop judged on a partial one.
    assert {a["direction"] for a in alert["windows"]} == {"spike"}
    assert {a["window_start"] for a in alert["windows"] if a["segment"] == "all"} == {
        f"{SHIFTED}T14:00:00+00:00"}


def test_a_closed_days_live_scores_equal_the_final_recompute(live_shifted, scored):
    refreshes, resources = live_shifted
    _, table, _, _ = scored
    final = table[table.event_date.astype(str) == SHIFTED].drop(columns="event_date")
    live = _live_windows(resources)
    assert not live["final"].any() and (live["materialization"] == "test").all()
    keys = ["window_start", "dimension", "segment"]
    live = live[final.columns].assign(
        window_start=pd.to_datetime(live.window_start, utc=True).dt.tz_localize(None),
        window_end=pd.to_datetime(live.window_end, utc=True).dt.tz_localize(None))
    got = live.sort_values(keys).reset_index(drop=True)
    want = final.sort_values(keys).reset_index(drop=True)
    assert len(got) == len(want) == 288 * final.segment.nunique()
    pd.testing.assert_frame_equal(got, want.astype(got.dtypes.to_dict()), check_dtype=False)
    # The drop was alerted after midnight, once its windows had ended; nothing twice.
    (_, first_alerts), (_, alerts) = refreshes
    later = alerts[len(first_alerts):]
    assert {a["direction"] for alert in later for a in alert["windows"]} == {"spike", "drop"}
    alerted = [(a["window_start"], a["segment"]) for alert in alerts for a in alert["windows"]]
    assert len(alerted) == len(set(alerted)) == int(final.is_anomaly.sum())
