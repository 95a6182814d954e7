"""Shared fixtures. Integration tests use the real local stack: Kafka, Elasticsearch and Spark."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import pytest

from config.settings import Settings, use_utc
from tests.helpers import create_topics, delete_topics, free_port, isolated_topics, topic_of_its_own

use_utc()


# The integration modules that take longest, in that order, ahead of the rest: the workers take
# modules in collection order, so they finish together instead of one running a long module alone.
LONGEST_FIRST = ("test_live", "test_ingest", "test_ui", "test_spark_cluster", "test_faults",
                 "test_assets", "test_supervision", "test_dashboard", "test_bench",
                 "test_kafka_brokers", "test_stack", "test_elasticsearch_nodes",
                 "test_daemon_restart", "test_retention", "test_anomalies")


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.integration)
    rank = {module: n for n, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).stem, len(rank)))


# Each module's setup, calls and teardown, summed: what LONGEST_FIRST is kept by. Under xdist the
# workers' reports reach the controller, which prints the summary.
MODULE_SECONDS: dict[str, float] = defaultdict(float)
SLOWEST_MODULES = 12


def pytest_runtest_logreport(report):
    MODULE_SECONDS[report.nodeid.split("::", 1)[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not MODULE_SECONDS:
        return
    terminalreporter.write_sep("=", f"slowest {SLOWEST_MODULES} modules (setup, calls and teardown)")
    slowest = sorted(MODULE_SECONDS.items(), key=lambda item: item[1], reverse=True)
    for module, seconds in slowest[:SLOWEST_MODULES]:
        terminalreporter.write_line(f"{seconds:8.1f}s {module}")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The real stack, brought up if it is not running yet (a no-op when it is)."""
    from stack import manager

    manager.up(settings)
    return settings


@pytest.fixture(scope="module")
def spark(stack: Settings):
    """A session of the stack's real Spark Connect server for one module: the same Spark, with
    Kafka's connector and Delta Lake, that every Dagster run is a client of.

    Per module, not per run: the server closes a session left idle for its session timeout, and a
    worker can spend longer than that in modules that never touch this one (`--dist loadfile`
    runs a module's tests back to back, none of them that long)."""
    from spark.session import connect, stop_session

    # A session of its own (not the process's default one), so Dagster runs inside the tests can
    # close theirs at the end of each run as they do in production. A dead server fails the test
    # within the retry budget instead of hanging the suite.
    session = connect(stack.spark_remote, retry_s=stack.spark_retry_s)
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    stop_session(session)


@pytest.fixture
def fresh_topic(stack: Settings):
    """A topic of its own for one test, deleted afterwards, so tests never see each other's data."""
    with topic_of_its_own(stack) as name:
        yield name


@pytest.fixture
def fresh_topics(stack: Settings) -> Settings:
    """Settings whose event and dead-letter topics are new and empty (6 and 1 partitions)."""
    isolated = isolated_topics(stack)
    create_topics(stack, {isolated.topic: 6, isolated.dlq_topic: 1})
    yield isolated
    delete_topics(stack, [isolated.topic, isolated.dlq_topic])



@pytest.fixture
def own_server(stack, fresh_topics, tmp_path):
    """Settings with a Spark Connect server of their own, under a supervisor of their own."""
    from stack import manager, spark_connect, supervisor

    own = dataclasses.replace(fresh_topics, state_dir=tmp_path / "state",
                              lake_dir=str(tmp_path / "lake"),
                              spark_remote=f"sc://127.0.0.1:{free_port()}")
    spark_connect.start(own)
    supervisor.ensure_running(own)
    yield own
    manager.down(own)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium, driven through Debian's chromedriver (`make browser` installs both)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1600,1000"):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    # Named explicitly: nothing is looked up or downloaded.
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.implicitly_wait(10)
    yield driver
    driver.quit()
