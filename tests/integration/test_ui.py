"""The Dagster UI, driven in headless Chromium: open the asset graph, materialize one partition,
launch a 3-day backfill over it while it runs, find that the backfill waited for it, and find the
indices filled. Screenshots are kept in test-artifacts/ui/."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from clickstream_dagster.serving.indices import SERVED
from config.clients import elasticsearch_client
from config.settings import child_env
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from spark.delta_lake import read_days
from tests.helpers import (
    answers,
    create_topics,
    delete_topics,
    free_port,
    isolated_topics,
    remove_indices,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
# Recent days: the launch dialog lists the last 90 days of partitions.
START = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=5)
DAYS = [(START + timedelta(days=d)).date().isoformat() for d in range(3)]
CONFIG = GeneratorConfig(events=6_000, seed=99, start=START, days=3)


@pytest.fixture(scope="module")
def dagster_ui(stack, tmp_path_factory):
    """`dagster dev` on its own topics, lake, index prefix and instance, with automation off."""
    settings = dataclasses.replace(isolated_topics(stack),
                                   lake_dir=str(tmp_path_factory.mktemp("lake")))
    prefix = f"ui-{settings.topic}"
    create_topics(stack, {settings.topic: 6, settings.dlq_topic: 1})
    produce(CONFIG, settings, progress=False)
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(
        (ROOT / "stack/templates/dagster.yaml").read_text())
    port = free_port()
    env = child_env(DAGSTER_HOME=str(home), CLICKSTREAM_AUTOMATION="off",
                    CLICKSTREAM_TOPIC=settings.topic, CLICKSTREAM_DLQ_TOPIC=settings.dlq_topic,
                    CLICKSTREAM_LAKE_DIR=settings.lake_dir, CLICKSTREAM_ES_INDEX_PREFIX=prefix,
                    SPARK_MASTER="local[2]", SPARK_DRIVER_MEMORY="2g")
    log = open(home / "dagster-dev.log", "wb")  # noqa: SIM115 (closed at teardown)
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-w", str(ROOT / "workspace.yaml"),
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(f"{url}/server_info"), 180, "dagster dev to answer")
    yield url, home, settings, prefix
    # SIGINT is dagster dev's own Ctrl-C shutdown. On SIGTERM to the group its daemon waited for
    # a shutdown-pipe message the parent never sent, and every run spent a minute here.
    os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # nothing of ours is left to stop
        server.wait(30)
    log.close()
    delete_topics(stack, [settings.topic, settings.dlq_topic])
    client = elasticsearch_client(stack)
    remove_indices(client, prefix, [spec.with_prefix(prefix).name for spec in SERVED])


def test_materialize_and_backfill_from_the_ui_fill_the_indices(dagster_ui, browser, spark):
    url, home, settings, prefix = dagster_ui
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{url}/asset-groups")
    _dismiss_welcome(browser)
    browser.find_element(By.XPATH, "//*[contains(text(), 'serving')]")  # the graph has rendered
    browser.save_screenshot(str(ARTIFACTS / "1-asset-graph.png"))

    _launch(browser, DAYS[0], "2-one-partition.png")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        wait_until(lambda: any(r.status == dg.DagsterRunStatus.STARTED for r in instance.get_runs()),
                   120, "the one-partition run to start")
    # While that run writes DAYS[0], a backfill over it: it must wait in its lanes.
    _launch(browser, f"[{DAYS[0]}...{DAYS[-1]}]", "3-three-day-backfill.png")
    backfill = _wait_for(home, runs=2, backfills=1)
    # The backfill's runs (its unpartitioned assets', then the range's) queued behind the first.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        first, *filled = sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
    assert filled and all(r.dagster_run.tags.get("dagster/backfill") == backfill for r in filled)
    assert filled[0].create_timestamp.timestamp() < first.end_time, \
        "the backfill's first run was created after the first run ended: nothing to wait for"
    assert all(r.start_time >= first.end_time for r in filled), \
        "a backfill run started while the first run still wrote the same assets"
    browser.get(f"{url}/runs/b/{backfill}?tab=partitions")
    time.sleep(3)
    browser.save_screenshot(str(ARTIFACTS / "4-backfill-done.png"))

    client = elasticsearch_client(settings)
    lake = Path(settings.lake_dir)
    for spec in SERVED:
        served = spec.with_prefix(prefix)
        for day in DAYS:
            rows = read_days(spark, str(lake / "analytics" / spec.table), [day])
            assert client.count(index=served.index_for(day))["count"] == rows.count() > 0


def _launch(browser, partitions: str, screenshot: str) -> None:
    browser.find_element(By.XPATH, "//button[contains(., 'Materialize all')]").click()
    field = browser.find_element(By.XPATH, "//div[contains(@class, 'bp5-dialog')]//input[@type='text' "
                                           "and not(@placeholder='Jump to…')]")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(partitions, Keys.ENTER)
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / screenshot))
    # "Launch 1 run" for one partition, "Launch backfill" for several.
    browser.find_element(By.XPATH, "//button[starts-with(normalize-space(.), 'Launch ')]").click()
    time.sleep(3)


def _wait_for(home: Path, runs: int, backfills: int, timeout_s: float = 600) -> str | None:
    """Wait until at least `runs` runs and `backfills` backfills exist and all succeeded.
    Returns the newest backfill's id."""
    with dg.DagsterInstance.from_config(str(home)) as instance:  # the UI's instance, read-only
        def done():
            statuses = [r.status for r in instance.get_runs()]
            assert dg.DagsterRunStatus.FAILURE not in statuses, "a run launched from the UI failed"
            fills = [b.status.value for b in instance.get_backfills()]
            return (len(statuses) >= runs and all(s == dg.DagsterRunStatus.SUCCESS for s in statuses)
                    and len(fills) >= backfills
                    and all(f in ("COMPLETED", "COMPLETED_SUCCESS") for f in fills))

        wait_until(done, timeout_s, f"{runs} run(s) and {backfills} backfill(s) to succeed")
        return instance.get_backfills()[0].backfill_id if backfills else None


def _dismiss_welcome(browser) -> None:
    time.sleep(3)
    for button in browser.find_elements(By.XPATH, "//button[normalize-space(.)='Skip']"):
        button.click()
