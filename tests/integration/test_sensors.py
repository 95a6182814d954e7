"""Sensors against the real broker and a real ingest: skips, stable run keys, cursors, late days."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime

import dagster as dg

from clickstream_dagster import sensors
from clickstream_dagster.assets.ingest import clickstream_landing
from clickstream_dagster.definitions import build_resources, defs
from clickstream_dagster.sensors import kafka_ingest_sensor, landing_partitions_sensor
from config.settings import Settings
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from spark.ingest import consumer_group
from spark.ingest.config import IngestConfig
from tests.helpers import finish, queue_run


def _resources(settings, tmp_path):
    return build_resources(dataclasses.replace(settings, lake_dir=str(tmp_path / "lake")))


def _tick(sensor, resources, instance, cursor=None):
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
                                 definitions=defs) as context:
        return sensor.evaluate_tick(context)


def test_kafka_sensor_skips_requests_once_and_restores_its_cursor(fresh_topics, tmp_path):
    resources = _resources(fresh_topics, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    empty = _tick(kafka_ingest_sensor, resources, instance)
    assert not empty.run_requests and "nothing new" in empty.skip_message

    produce(GeneratorConfig(events=500, seed=3), fresh_topics, progress=False)
    first = _tick(kafka_ingest_sensor, resources, instance, cursor=empty.cursor)
    assert len(first.run_requests) == 1
    # The sensor's runs stream: one run serves the live path for minutes, not one cycle.
    streaming = first.run_requests[0].run_config["ops"]["clickstream_landing"]["config"]
    assert streaming["stream_seconds"] == Settings.ingest_stream_s > 0
    # ... and a run whose process died is failed by run monitoring once far past that limit.
    assert float(first.run_requests[0].tags["dagster/max_runtime"]) > Settings.ingest_stream_s
    cursor = json.loads(first.cursor)
    assert sum(cursor["end_offsets"].values()) == 500
    # Evaluated again from its restored cursor, with nothing consumed yet: the same run key, so
    # Dagster never launches a second ingest for the same records.
    again = _tick(kafka_ingest_sensor, resources, instance, cursor=first.cursor)
    assert [r.run_key for r in again.run_requests] == [first.run_requests[0].run_key]

    assert dg.materialize([clickstream_landing], resources=resources, instance=instance).success
    after = _tick(kafka_ingest_sensor, resources, instance, cursor=again.cursor)
    assert not after.run_requests and "all consumed" in after.skip_message


def test_a_group_past_the_end_of_a_recreated_topic_still_starts_an_ingest(fresh_topics, tmp_path):
    """A topic deleted and created again under the ingest's consumer group: the group's old
    position is past the new records, which must not read as all consumed."""
    resources = _resources(fresh_topics, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    partitions = len(resources["kafka"].end_offsets())
    consumer_group.publish(IngestConfig.from_settings(fresh_topics),
                           {str(p): 10_000 for p in range(partitions)})
    empty = _tick(kafka_ingest_sensor, resources, instance)
    assert not empty.run_requests and "past the end" in empty.skip_message

    produce(GeneratorConfig(events=500, seed=3), fresh_topics, progress=False)
    tick = _tick(kafka_ingest_sensor, resources, instance, cursor=empty.cursor)
    assert len(tick.run_requests) == 1
    assert tick.run_requests[0].tags["records_behind"] == "500"
    # Not the key a run for the same offsets of the topic's earlier life would have had.
    assert ",ahead:" in tick.run_requests[0].run_key


def test_late_events_for_an_earlier_day_request_that_day_only(fresh_topics, tmp_path):
    resources = _resources(fresh_topics, tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    two_days = GeneratorConfig(events=3_000, seed=8, start=datetime(2026, 7, 1, tzinfo=UTC), days=2)
    produce(two_days, fresh_topics, progress=False)
    assert dg.materialize([clickstream_landing], resources=resources, instance=instance).success
    first = _tick(landing_partitions_sensor, resources, instance)
    assert sorted(r.partition_key for r in first.run_requests) == ["2026-07-01", "2026-07-02"]

    nothing = _tick(landing_partitions_sensor, resources, instance, cursor=first.cursor)
    assert not nothing.run_requests

    # Stragglers from the afternoon of day 1 arrive after day 2's traffic.
    late = GeneratorConfig(events=200, seed=9, start=datetime(2026, 7, 1, 15, tzinfo=UTC), days=0.1)
    produce(late, fresh_topics, progress=False)
    assert dg.materialize([clickstream_landing], resources=resources, instance=instance).success
    second = _tick(landing_partitions_sensor, resources, instance, cursor=first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2026-07-01"]


def test_kafka_sensor_never_queues_a_second_ingest_and_retries_a_failed_one(fresh_topics, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(sensors, "INGEST_RETRY_BASE_S", 1)
    resources = _resources(fresh_topics, tmp_path)
    with dg.instance_for_test() as instance:
        produce(GeneratorConfig(events=300, seed=4), fresh_topics, progress=False)
        first = _tick(kafka_ingest_sensor, resources, instance)
        (request,) = first.run_requests
        run = queue_run(instance, request, job_name="ingest_job")

        # More traffic while the run waits, then while it runs: no second ingest is requested.
        produce(GeneratorConfig(events=300, seed=5), fresh_topics, progress=False)
        queued = _tick(kafka_ingest_sensor, resources, instance, cursor=first.cursor)
        assert not queued.run_requests and "is queued" in queued.skip_message
        finish(instance, run, dg.DagsterRunStatus.STARTED)
        running = _tick(kafka_ingest_sensor, resources, instance, cursor=queued.cursor)
        assert not running.run_requests and "is started" in running.skip_message

        # It fails, and the topic goes quiet: the retry waits out its backoff, then gets a run key
        # of its own although the end offsets have not moved.
        finish(instance, run, dg.DagsterRunStatus.FAILURE)
        backing_off = _tick(kafka_ingest_sensor, resources, instance, cursor=running.cursor)
        assert not backing_off.run_requests and "retrying in" in backing_off.skip_message
        time.sleep(1.2)
        retry = _tick(kafka_ingest_sensor, resources, instance, cursor=backing_off.cursor)
        (retry_request,) = retry.run_requests
        assert retry_request.run_key.endswith(":retry-1")
        assert retry_request.tags["records_behind"] == "600"
        again = _tick(kafka_ingest_sensor, resources, instance, cursor=retry.cursor)
        assert [r.run_key for r in again.run_requests] == [retry_request.run_key]
