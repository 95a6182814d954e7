"""The instance folder `clickstream run` uses: the project's run lanes, and an earlier copy of the
template brought up to date while a file of the user's own is kept."""

from pathlib import Path

import dagster as dg
import pytest

from clickstream_dagster.assets.ingest import INGEST_POOL
from clickstream_dagster.definitions import defs
from clickstream_dagster.partitions import DAILY_POOL, daily_partitions
from sandbox.instance import ensure_instance

ROOT = Path(__file__).resolve().parents[2]
EARLIER = Path(__file__).with_name("data") / "dagster-instance-2026-11-30.yaml"


def _pools(home: Path):
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_concurrency_config().pool_config


def test_a_new_home_queues_runs_one_at_a_time_per_pool(tmp_path):
    assert ensure_instance(tmp_path) is None
    pools = _pools(tmp_path)
    assert pools.pool_granularity.value == "run" and pools.default_pool_limit == 1


@pytest.mark.parametrize("template", [ROOT / "stack/templates/dagster.yaml",
                                      ROOT / "docker/dagster.yaml"])
def test_every_shipped_instance_has_the_same_lanes(template, tmp_path):
    text = template.read_text()
    if "postgres" in text:  # docker compose's storage; the lanes are what is compared
        text = text[text.index("run_coordinator:"):]
    (tmp_path / "dagster.yaml").write_text(text)
    pools = _pools(tmp_path)
    assert pools.pool_granularity.value == "run" and pools.default_pool_limit == 1


def test_an_untouched_earlier_template_is_replaced(tmp_path):
    (tmp_path / "dagster.yaml").write_bytes(EARLIER.read_bytes())
    note = ensure_instance(tmp_path)
    assert "replaced" in note
    assert (tmp_path / "dagster.yaml").read_bytes() == \
        (ROOT / "stack/templates/dagster.yaml").read_bytes()
    assert ensure_instance(tmp_path) is None  # and a second start leaves it be


def test_an_edited_instance_is_kept_and_its_missing_lanes_named(tmp_path):
    edited = EARLIER.read_text() + "# mine\n"
    (tmp_path / "dagster.yaml").write_text(edited)
    note = ensure_instance(tmp_path)
    assert str(tmp_path / "dagster.yaml") in note and "granularity: run" in note
    assert (tmp_path / "dagster.yaml").read_text() == edited


def test_every_writer_of_a_day_is_in_the_daily_pool_and_the_ingest_in_its_own():
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.partitions_def == daily_partitions:
            assert node.pools == {DAILY_POOL}, key
    assert graph.get(dg.AssetKey("clickstream_landing")).pools == {INGEST_POOL}
    retention = defs.resolve_job_def("retention_job")
    assert {node.name for node in retention.graph.node_defs if node.pool == DAILY_POOL} == \
        {"expire_lake", "expire_indices"}
