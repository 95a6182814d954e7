"""The expectation suites in the repository stay consistent with the contract and the assets."""

import great_expectations.expectations as gxe
import pytest

from clickstream_dagster.checks.gx_suites import check_names, suite_definition
from clickstream_dagster.checks.quality import QUALITY_CHECKS, _parameters
from contract import event_schema
from spark.analytics.anomalies import TRAILING_DAYS
from spark.analytics.transform import FUNNEL_DIMENSIONS, FUNNEL_STEPS

SUITES = ["raw_clickstream", "url_country_daily", "url_popularity_5m", "device_usage_5m",
          "active_users_5m", "user_sessions", "conversion_funnel", "bot_traffic",
          "traffic_anomalies"]


@pytest.mark.parametrize("suite", SUITES)
def test_every_expectation_is_a_gx_expectation_in_a_named_check(suite):
    for expectation in suite_definition(suite)["expectations"]:
        name = "".join(part.title() for part in expectation["type"].split("_"))
        assert hasattr(gxe, name), expectation["type"]
        assert expectation["meta"]["check"]
    assert "has_rows" in check_names(suite)


def test_raw_urls_are_checked_with_the_contract_pattern():
    contract = event_schema()["properties"]["page"]["properties"]["url"]["pattern"]
    (url_rule,) = [e for e in suite_definition("raw_clickstream")["expectations"]
                   if e["meta"]["check"] == "url_is_well_formed"]
    assert url_rule["kwargs"]["regex"] == contract


def test_every_check_is_blocking():
    specs = [spec for checks in QUALITY_CHECKS for spec in checks.check_specs]
    assert len(specs) == sum(len(check_names(s)) for s in SUITES)
    assert all(spec.blocking for spec in specs)


def test_volume_band_needs_history_then_follows_the_trailing_median(monkeypatch):
    monkeypatch.setenv("CLICKSTREAM_VOLUME_BAND", "0.2")
    short = _parameters("2026-06-05", {}, {"2026-06-03": 100, "2026-06-04": 100})
    assert (short["volume_min"], short["trailing_days"]) == (0, 2)
    history = {f"2026-06-0{d}": n for d, n in zip(range(1, 5), (90, 100, 110, 5000), strict=True)}
    enough = _parameters("2026-06-05", {"2026-06-05": 120}, history)
    assert (enough["volume_min"], enough["volume_max"]) == (84, 127)  # median 105 +- 20 %
    assert enough["raw_rows"] == 120


def test_the_funnel_suite_knows_every_step_and_breakdown():
    allowed = {e["kwargs"]["column"]: e["kwargs"]["value_set"]
               for e in suite_definition("conversion_funnel")["expectations"]
               if e["type"] == "expect_column_values_to_be_in_set"}
    assert allowed == {"step": [name for name, _, _ in FUNNEL_STEPS],
                       "dimension": list(FUNNEL_DIMENSIONS)}


def test_the_anomaly_suite_allows_the_trailing_days_it_scores_against():
    (history,) = [e for e in suite_definition("traffic_anomalies")["expectations"]
                  if e["kwargs"].get("column") == "history_days"]
    assert history["kwargs"]["max_value"] == TRAILING_DAYS
