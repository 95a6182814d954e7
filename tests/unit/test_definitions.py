"""The definitions load, and every asset, job, sensor and schedule resolves by name."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from clickstream_dagster.definitions import defs
from clickstream_dagster.serving.indices import SERVED
from spark.analytics.transform import COLUMN_SOURCES
from tests.helpers import report_landing

EXPECTED_ASSETS = {
    "clickstream_topic", "clickstream_landing", "raw_clickstream", "url_country_daily",
    "url_popularity_5m", "device_usage_5m", "active_users_5m", "user_sessions",
    "clickstream_url_country_index", "clickstream_url_popularity_5m_index",
    "clickstream_sessions_index", "conversion_funnel", "traffic_anomalies",
    "clickstream_funnel_index", "clickstream_anomalies_index", "bot_traffic",
    "clickstream_bots_index",
}


def test_every_definition_resolves_by_name():
    repository = defs.get_repository_def()
    asset_keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert asset_keys >= EXPECTED_ASSETS
    for key in asset_keys:
        assert repository.asset_graph.get(dg.AssetKey.from_user_string(key)) is not None
    for job in repository.get_all_jobs():
        if job.name.startswith("__"):  # Dagster's implicit asset job, not one of ours
            continue
        assert defs.resolve_job_def(job.name).name == job.name
    for sensor in repository.sensor_defs:
        assert defs.resolve_sensor_def(sensor.name).name == sensor.name
    for schedule in repository.schedule_defs:
        assert defs.resolve_schedule_def(schedule.name).name == schedule.name


def test_jobs_and_sensors_resolve_by_name():
    assert {j.name for j in [defs.resolve_job_def("ingest_job"), defs.resolve_job_def("daily_job")]} == \
        {"ingest_job", "daily_job"}
    for name in ("kafka_ingest_sensor", "landing_partitions_sensor",
                 "clickstream_topic_observation_sensor", "run_failure_alert_sensor"):
        assert defs.resolve_sensor_def(name).name == name


def _close_tick(instance: dg.DagsterInstance):
    schedule = defs.resolve_schedule_def("daily_close_schedule")
    return schedule.evaluate_tick(dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 11, 23, 2, 0, tzinfo=UTC),
        repository_def=defs.get_repository_def()))


def test_a_day_is_closed_after_the_lateness_window():
    with dg.instance_for_test() as instance:
        report_landing(instance, "2026-11-22", "2026-11-23")
        (request,) = _close_tick(instance).run_requests
    assert request.partition_key == "2026-11-22"  # the day that just ended, not today
    assert request.tags["clickstream/day"] == "final"


def test_a_day_no_ingest_landed_is_not_closed():
    """The pipeline started after that day: a run would only fail its has_rows check."""
    with dg.instance_for_test() as instance:
        report_landing(instance, "2026-11-23")  # today's traffic only
        result = _close_tick(instance)
    assert not result.run_requests
    assert "no ingest reported events dated 2026-11-22" in result.skip_message


def _assets() -> dict[str, dg.AssetsDefinition]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()
            if graph.get(key).is_materializable}


def test_every_asset_has_an_owner_tags_a_code_version_and_a_description():
    assets = _assets()
    assert set(assets) == EXPECTED_ASSETS - {"clickstream_topic"} | {"live_indices"}
    for name, node in assets.items():
        assert node.owners == ["team:clickstream"], name
        assert node.tags.get("pipeline") == "clickstream" and node.tags.get("layer"), name
        assert node.code_version and len(node.code_version) == 12, name
        assert node.description, name


def test_analytics_tables_carry_column_lineage_from_the_raw_table():
    assets = _assets()
    for table, sources in COLUMN_SOURCES.items():
        lineage = assets[table].metadata["dagster/column_lineage"]
        assert set(lineage.deps_by_column) == set(sources)
        for column, deps in lineage.deps_by_column.items():
            assert {d.asset_key.to_user_string() for d in deps} == {"raw_clickstream"}
            assert sorted(d.column_name for d in deps) == sorted(sources[column])


def test_index_assets_show_their_mapping_as_columns_and_a_count_check():
    assets = _assets()
    checks = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert "served_documents_match_table" in checks
    for spec in SERVED:
        node = assets[spec.name.replace("-", "_") + "_index"]
        schema = node.metadata["dagster/column_schema"]
        assert {c.name: c.type for c in schema.columns} == {
            name: mapping["type"] for name, mapping in spec.properties.items()}


def test_resources_are_typed_and_complete():
    resources = defs.resources
    assert set(resources) == {"kafka", "elasticsearch", "lake", "spark"}
    assert all(isinstance(r, dg.ConfigurableResource) for r in resources.values())


def test_no_index_serves_an_ip_address():
    """Personal data stays in the lake, anonymized: nothing served carries an address."""
    for spec in SERVED:
        assert not {"ip", "client_ip", "ip_address"} & set(spec.properties), spec.name


# CLICKSTREAM_FIRST_DAY is read once, when the definitions load, so they load in a process of
# their own: a moved first day must reach every daily asset and the partition sensor alike.
REPLAY_2024 = """
import json
import dagster as dg
from clickstream_dagster.definitions import defs
from clickstream_dagster.sensors import landing_partitions_sensor
from tests.helpers import report_landing

graph = defs.resolve_asset_graph()
daily = [graph.get(key).partitions_def for key in graph.get_all_asset_keys()
         if graph.get(key).partitions_def is not None]
week = daily[0].get_partition_keys_in_range(dg.PartitionKeyRange("2024-03-04", "2024-03-10"))
with dg.instance_for_test() as instance:
    report_landing(instance, "2024-02-29", "2024-03-05")
    result = landing_partitions_sensor.evaluate_tick(
        dg.build_sensor_context(instance=instance, definitions=defs))
print(json.dumps({"first_days": sorted({p.get_first_partition_key() for p in daily}),
                  "week": week, "requested": [r.partition_key for r in result.run_requests]}))
"""


def test_a_week_of_2024_can_be_replayed_once_the_first_day_moves_back(monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_FIRST_DAY", "2024-03-01")
    loaded = subprocess.run([sys.executable, "-c", REPLAY_2024], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    replay = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert replay["first_days"] == ["2024-03-01"]
    assert replay["week"] == [f"2024-03-{day:02d}" for day in range(4, 11)]
    # A closed 2024 day with late data gets its daily run; a day before the first one never does.
    assert replay["requested"] == ["2024-03-05"]
