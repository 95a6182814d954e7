"""Kibana's saved objects (docker/kibana/clickstream.ndjson, imported by docker compose) hold to
the index templates: every data view names a served family and a date field of it, every field a
visualization reads is in that family's mapping, and every reference resolves."""

import json
from pathlib import Path

import pytest
import yaml

from clickstream_dagster.serving.indices import SERVED

ROOT = Path(__file__).resolve().parents[2]
OBJECTS = [json.loads(line) for line in
           (ROOT / "docker" / "kibana" / "clickstream.ndjson").read_text().splitlines() if line]
BY_ID = {(o["type"], o["id"]): o for o in OBJECTS}
MAPPINGS = {spec.alias: spec.properties for spec in SERVED}
DATA_VIEWS = {o["id"]: o["attributes"] for o in OBJECTS if o["type"] == "index-pattern"}
VISUALIZATIONS = [o for o in OBJECTS if o["type"] == "visualization"]


def test_there_is_a_data_view_on_a_date_field_for_every_served_index():
    families = {view["title"]: view["timeFieldName"] for view in DATA_VIEWS.values()}
    assert set(families) == set(MAPPINGS)
    for family, time_field in families.items():
        assert MAPPINGS[family][time_field]["type"] == "date", family


@pytest.mark.parametrize("visualization", VISUALIZATIONS, ids=lambda o: o["id"])
def test_every_visualization_reads_fields_its_index_maps(visualization):
    (reference,) = visualization["references"]
    view = DATA_VIEWS[reference["id"]]
    mapping = MAPPINGS[view["title"]]
    state = json.loads(visualization["attributes"]["visState"])
    fields = [agg["params"]["field"] for agg in state["aggs"] if "field" in agg["params"]]
    assert fields and set(fields) <= set(mapping), (visualization["id"], set(fields) - set(mapping))
    source = json.loads(visualization["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["indexRefName"] == reference["name"]
    # A query names fields of the same index: `field : "value"`.
    query = source["query"]["query"]
    assert all(term.split(" : ")[0] in mapping for term in query.split(" and ") if term)


def test_the_dashboard_shows_every_visualization_and_every_served_index():
    (dashboard,) = [o for o in OBJECTS if o["type"] == "dashboard"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    names = {ref["name"]: ref for ref in dashboard["references"]}
    assert {panel["panelRefName"] for panel in panels} == set(names)
    shown = {names[panel["panelRefName"]]["id"] for panel in panels}
    assert shown == {o["id"] for o in VISUALIZATIONS}
    assert all(("visualization", vid) in BY_ID for vid in shown)
    read = {DATA_VIEWS[BY_ID[("visualization", vid)]["references"][0]["id"]]["title"] for vid in shown}
    assert read == set(MAPPINGS)


def test_compose_imports_the_objects_into_kibana():
    setup = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["kibana-setup"]
    assert "./docker/kibana:/kibana:ro" in setup["volumes"]
    assert setup["entrypoint"] == ["bash", "/kibana/import.sh"]
    script = (ROOT / "docker" / "kibana" / "import.sh").read_text()
    assert "/clickstream.ndjson" in script and "_import?overwrite=true" in script
