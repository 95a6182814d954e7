"""Shared fixtures. Integration tests use the real local stack: Kafka, Elasticsearch and Spark."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

os.environ["TZ"] = "UTC"

from clickstream_dagster.settings import Settings  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent.name == "integration":
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The real stack, brought up if it is not running yet (a no-op when it is)."""
    from clickstream_dagster.stack import manager

    manager.up(settings)
    return settings


@pytest.fixture(scope="session")
def spark(stack: Settings):
    from clickstream_dagster.stack.spark_jars import spark_kafka_jars
    from spark.session import build_session

    session = build_session(
        "clickstream-tests",
        master="local[2]",
        driver_memory="2g",
        jars=spark_kafka_jars(stack),
        conf={"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"},
    )
    yield session
    session.stop()


@pytest.fixture
def fresh_topic(stack: Settings):
    """A topic of its own for one test, deleted afterwards, so tests never see each other's data."""
    from confluent_kafka.admin import NewTopic

    from clickstream_dagster.clients import kafka_admin

    name = f"test-{uuid.uuid4().hex[:12]}"
    admin = kafka_admin(stack)
    for future in admin.create_topics([NewTopic(name, 3, 1)]).values():
        future.result(timeout=30)
    yield name
    for future in admin.delete_topics([name]).values():
        future.result(timeout=30)

