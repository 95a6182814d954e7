"""Unit tests need no service and no Maven: pure transformations run on an in-process Spark with
pyspark's own jars (no Kafka connector, no Delta Lake), so `pytest tests/unit` works on a machine
with only Python and Java."""

from __future__ import annotations

import sys

import pytest

from spark.session import BASE_CONF


@pytest.fixture(scope="session")
def spark():
    """A small in-process Spark for the whole unit run, stopped at the end."""
    from pyspark.sql import SparkSession

    # pyspark marks a process that opened a Spark Connect session (the integration tests, when
    # they ran first) and then builds Connect sessions and columns only; these tests need the
    # in-process kind, so the mark is lifted while they run.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SPARK_CONNECT_MODE_ENABLED", raising=False)
        # The enrichment UDFs' Python workers need this environment's packages.
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.master("local[2]").appName("clickstream-unit-tests")
        for key, value in {**BASE_CONF, "spark.sql.shuffle.partitions": "2",
                           "spark.ui.enabled": "false"}.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        yield session
        session.stop()
