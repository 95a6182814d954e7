"""Retention on the real stack: landing events, bad rows and daily indices past their days are
deleted, and nothing else; a late event for an expired day is never lost, and its compaction adds
it to the day the raw table kept."""

import dataclasses
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from pyspark.sql import functions as F

from clickstream_dagster.assets.ingest import clickstream_landing
from clickstream_dagster.assets.lake import raw_clickstream
from clickstream_dagster.definitions import build_resources
from clickstream_dagster.resources import ElasticsearchResource
from clickstream_dagster.retention import retention_job
from clickstream_dagster.serving.indices import SERVED, URL_COUNTRY, ensure_index
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from spark.delta_lake import read_days
from stack.kafka import ensure_topics
from tests.helpers import delete_topics, isolated_topics, remove_indices

TODAY = datetime.now(UTC).date()
EXPIRED, KEPT = TODAY - timedelta(days=40), TODAY - timedelta(days=3)
RETENTION = {"landing_days": 30, "dead_letter_days": 14, "index_days": 30}


def _day(day, events: int, seed: int) -> GeneratorConfig:
    return GeneratorConfig(events=events, seed=seed, days=1, duplicate_ratio=0.02,
                           malformed_ratio=0.02,
                           start=datetime(day.year, day.month, day.day, tzinfo=UTC))


@pytest.fixture(scope="module")
def lake(stack, spark, tmp_path_factory):
    settings = dataclasses.replace(isolated_topics(stack), dead_letter_retention_days=7,
                                   lake_dir=str(tmp_path_factory.mktemp("retention-lake")))
    ensure_topics(settings)
    resources = build_resources(settings)
    prefix = f"test-{settings.topic}"
    resources["elasticsearch"] = ElasticsearchResource(url=settings.elasticsearch_url,
                                                       index_prefix=prefix)
    yield settings, resources
    delete_topics(stack, [settings.topic, settings.dlq_topic])
    remove_indices(resources["elasticsearch"].client(), prefix,
                   [spec.with_prefix(prefix).name for spec in SERVED])


def _ingest(settings, resources, *configs) -> None:
    for config in configs:
        produce(config, settings, progress=False)
    assert dg.materialize([clickstream_landing], resources=resources).success


def _compact(resources, day) -> None:
    assert dg.materialize([raw_clickstream], resources=resources,
                          partition_key=day.isoformat()).success


def _ids(spark, table: str, day) -> list[str]:
    return [r.event_id for r in read_days(spark, table, [day.isoformat()]).select("event_id").collect()]


def _expire(resources):
    result = retention_job.execute_in_process(resources=resources, run_config={"ops": {
        op: {"config": RETENTION} for op in ("expire_lake", "expire_indices",
                                             "expire_dead_letter_topic")}})
    assert result.success
    return {event.step_key: event.event_specific_data.metadata
            for event in result.all_events if event.is_successful_output}


def test_retention_deletes_only_expired_data_and_never_a_late_event(lake, spark):
    settings, resources = lake
    lake_paths = resources["lake"]
    _ingest(settings, resources, _day(EXPIRED, 2_000, seed=1), _day(KEPT, 2_000, seed=2))
    for day in (EXPIRED, KEPT):
        _compact(resources, day)
    raw_expired = sorted(_ids(spark, lake_paths.raw, EXPIRED))
    # A late event for the expired day, after its compaction: in the landing only.
    _ingest(settings, resources, GeneratorConfig(events=30, seed=3, days=0.01, start=datetime(
        EXPIRED.year, EXPIRED.month, EXPIRED.day, 12, tzinfo=UTC)))
    late = sorted(set(_ids(spark, lake_paths.landing, EXPIRED)) - set(raw_expired))
    assert len(late) == 30
    expired_landing = len(_ids(spark, lake_paths.landing, EXPIRED))  # duplicates included
    kept_landing = sorted(_ids(spark, lake_paths.landing, KEPT))
    # Bad rows as if ingested 20 days ago, beside today's.
    bad_rows = spark.read.format("delta").load(lake_paths.bad_rows)
    todays_bad = bad_rows.count()
    assert todays_bad > 0
    bad_rows.withColumn("ingest_date", F.lit(TODAY - timedelta(days=20))).write.format(
        "delta").mode("append").save(lake_paths.bad_rows)
    client = resources["elasticsearch"].client()
    spec = URL_COUNTRY.with_prefix(resources["elasticsearch"].index_prefix)
    for day in (EXPIRED, KEPT):
        ensure_index(client, spec, day.isoformat(), replicas=0)
    leftover = f"{spec.index_for(EXPIRED.isoformat())}_0badc0de"  # a killed load's index
    client.indices.create(index=leftover)

    metadata = _expire(resources)

    # Only the compacted events of the expired day left the landing; the late ones wait for theirs.
    assert sorted(_ids(spark, lake_paths.landing, EXPIRED)) == late
    assert sorted(_ids(spark, lake_paths.landing, KEPT)) == kept_landing
    assert metadata["expire_lake"]["landing_rows_deleted"].value == expired_landing - len(late)
    remaining = spark.read.format("delta").load(lake_paths.bad_rows)
    assert remaining.count() == todays_bad
    assert metadata["expire_lake"]["bad_rows_deleted"].value == todays_bad
    assert not client.indices.exists(index=spec.index_for(EXPIRED.isoformat()))
    assert not client.indices.exists(index=leftover)
    assert client.indices.exists(index=spec.index_for(KEPT.isoformat()))
    assert sorted(metadata["expire_indices"]["indices_deleted"].value) == sorted(
        [f"{spec.index_for(EXPIRED.isoformat())}_live", leftover])
    admin = resources["kafka"].admin()
    (config,) = [future.result(timeout=30) for future in
                 admin.describe_configs([_topic(settings.dlq_topic)]).values()]
    assert config["retention.ms"].value == str(14 * 86_400_000)
    # The raw table kept the expired day whole, and its compaction adds the late events to it.
    assert sorted(_ids(spark, lake_paths.raw, EXPIRED)) == raw_expired
    _compact(resources, EXPIRED)
    assert sorted(_ids(spark, lake_paths.raw, EXPIRED)) == sorted(raw_expired + late)

    # Once compacted, the late events expire too; nothing else is left to delete.
    again = _expire(resources)
    assert again["expire_lake"]["landing_rows_deleted"].value == len(late)
    assert _ids(spark, lake_paths.landing, EXPIRED) == []
    assert again["expire_indices"]["indices_deleted"].value == []
    assert sorted(_ids(spark, lake_paths.raw, EXPIRED)) == sorted(raw_expired + late)


def _topic(name: str):
    from confluent_kafka.admin import ConfigResource, ResourceType

    return ConfigResource(ResourceType.TOPIC, name)
