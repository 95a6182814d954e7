"""The demo fills every served index, and the dashboard page shows them: loaded in headless
Chromium, each chart holds the figures the indices and the lake hold. The screenshot is kept in
test-artifacts/dashboard/."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from cli.demo import run_demo
from clickstream_dagster.serving.indices import ANOMALIES, FUNNEL, SERVED, URL_POPULARITY
from config.clients import elasticsearch_client
from config.settings import child_env
from sandbox.pipeline import Sandbox
from spark import lake_layout
from spark.analytics.transform import FUNNEL_STEPS
from spark.delta_lake import read_days
from tests.helpers import answers, delete_topics, free_port, remove_indices, wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
DAYS = 4
# Enough sessions on the last day for its injected spike to stand out (about 20 per evening window).
EVENTS = 80_000


@pytest.fixture(scope="module")
def demo(stack):
    """`make demo`'s run, smaller, in a sandbox of its own."""
    name = f"test-demo-{uuid.uuid4().hex[:8]}"
    report = run_demo(stack, EVENTS, DAYS, name=name)
    sandbox = Sandbox(name, stack)
    yield sandbox, report
    delete_topics(stack, [sandbox.settings.topic, sandbox.settings.dlq_topic])
    shutil.rmtree(sandbox.settings.lake_dir, ignore_errors=True)
    remove_indices(elasticsearch_client(stack), name, [spec.with_prefix(name).name for spec in SERVED])


@pytest.fixture(scope="module")
def dashboard(demo, tmp_path_factory):
    """`clickstream dashboard` on the demo's indices, as `make dashboard PREFIX=...` serves it."""
    sandbox, _ = demo
    port = free_port()
    log = open(tmp_path_factory.mktemp("dashboard") / "dashboard.log", "wb")  # noqa: SIM115 (closed at teardown)
    server = subprocess.Popen(
        [sys.executable, "-m", "cli", "dashboard", "--port", str(port), "--index-prefix",
         sandbox.name], cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(url), 60, "the dashboard to answer")
    yield url
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)
    log.close()


def test_the_demo_fills_every_served_index_and_reports_them(demo):
    sandbox, report = demo
    client = elasticsearch_client(sandbox.settings)
    for spec in SERVED:
        assert client.count(index=spec.with_prefix(sandbox.name).alias)["count"] > 0, spec.name
    for line in ("Funnel on", "Anomalies on", "Bots:", f"make dashboard PREFIX={sandbox.name}"):
        assert line in report


def _figure(browser, graph: str) -> dict:
    """The plotly figure a graph holds in the page: its traces and its layout's title."""
    return browser.execute_script(
        "const plot = document.querySelector(`#${arguments[0]} .js-plotly-plot`);"
        "return plot && {data: plot.data.map(t => ({x: t.x, y: t.y, name: t.name})),"
        "                title: plot.layout.title && plot.layout.title.text};", graph)


def test_the_dashboard_shows_the_last_days_figures(demo, dashboard, browser, spark):
    sandbox, _ = demo
    prefix, client = sandbox.name, elasticsearch_client(sandbox.settings)
    browser.set_window_size(1600, 1900)  # the whole page in the screenshot
    browser.get(dashboard)
    wait_until(lambda: (_figure(browser, "funnel") or {}).get("data"), 60, "the charts to draw")
    time.sleep(1)  # the last figures' transitions
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    last = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()  # the demo's last day

    def hits(spec, query):
        return [h["_source"] for h in client.search(
            index=spec.with_prefix(prefix).alias, size=1000,
            query={"bool": {"filter": [{"term": {"event_date": last}}, *query]}})["hits"]["hits"]]

    # Traffic: every event of the day's windows, and one marker per anomalous window.
    traffic = _figure(browser, "traffic")["data"]
    events = client.search(index=URL_POPULARITY.with_prefix(prefix).alias, size=0,
                           query={"term": {"event_date": last}},
                           aggs={"events": {"sum": {"field": "events"}}})["aggregations"]["events"]
    assert sum(traffic[0]["y"]) == events["value"] > 0
    found = hits(ANOMALIES, [{"term": {"is_anomaly": True}}])
    assert {a["direction"] for a in found} >= {"spike"}  # the demo day's injected spike
    assert sum(len(trace["x"]) for trace in traffic[1:]) == len(found)
    # The funnel, step by step, as the index holds the whole day's.
    funnel = _figure(browser, "funnel")["data"][0]
    steps = sorted(hits(FUNNEL, [{"term": {"dimension": "all"}}]), key=lambda s: s["step_number"])
    assert funnel["y"] == [name for name, _, _ in FUNNEL_STEPS]
    assert funnel["x"] == [s["sessions"] for s in steps]
    # Each step keeps at most the sessions of the one before. The demo's last day has a few dozen
    # carts, so some days end in no purchase: that day's figures, not a broken chart.
    assert funnel["x"] == sorted(funnel["x"], reverse=True) and funnel["x"][0] > funnel["x"][-1]
    # The share of bots against the lake's own rows of the day (bots included).
    raw = read_days(spark, lake_layout.raw(sandbox.settings.lake_dir), [last])
    total, bots = raw.count(), raw.where("is_bot").count()
    assert _figure(browser, "bots")["title"] == f"Bots: {bots / total:.1%} of {total:,} events (by browser)"
    # Top countries and devices are drawn largest last (horizontal bars, top down).
    countries = _figure(browser, "top-countries")["data"][0]
    assert countries["x"] == sorted(countries["x"]) and len(countries["y"]) == 10
    devices = _figure(browser, "devices")["data"][0]
    assert sum(devices["x"]) == client.count(index=f"{prefix}-sessions",
                                             query={"term": {"event_date": last}})["count"]
    freshness = browser.find_element(By.ID, "freshness").text
    assert freshness.startswith("Data as of") and f"final through {last}" in freshness

