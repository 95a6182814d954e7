"""Spark's Kafka connector and Delta Lake jars, fetched with mvn and handed to Spark via spark.jars.

`spark.jars.packages` resolves through Ivy and ignores Maven settings, so the project resolves the
connector with mvn itself and passes plain jar paths.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyspark

from ..settings import Settings
from . import maven
from .versions import DELTA_VERSION, SPARK_VERSION

_VERSION_SUFFIX = re.compile(r"-\d[^-]*\.jar$")


def spark_kafka_jars(settings: Settings) -> list[str]:
    """The connector and the dependencies pyspark does not already ship, as absolute paths."""
    dest = settings.cache_dir / f"spark-sql-kafka-{SPARK_VERSION}"
    jars = maven.copy_dependencies(
        "spark-kafka",
        [f"org.apache.spark:spark-sql-kafka-0-10_2.13:{SPARK_VERSION}"],
        dest,
        settings=settings.maven_settings,
    )
    return _not_shipped(jars)


def delta_jars(settings: Settings) -> list[str]:
    """Delta Lake for Spark (delta-spark and delta-storage), as absolute paths."""
    dest = settings.cache_dir / f"delta-spark-{DELTA_VERSION}"
    jars = maven.copy_dependencies(
        "delta-spark", [f"io.delta:delta-spark_2.13:{DELTA_VERSION}"], dest,
        settings=settings.maven_settings)
    return _not_shipped(jars)


def spark_jars(settings: Settings) -> list[str]:
    """Every jar the pipeline's Spark needs beyond pyspark's own."""
    return spark_kafka_jars(settings) + delta_jars(settings)


def _not_shipped(jars: list[Path]) -> list[str]:
    # A second copy of scala-library, hadoop-client or snappy on the classpath invites conflicts.
    shipped = {_artifact(p) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [str(p) for p in jars if _artifact(p) not in shipped]


def _artifact(jar: Path) -> str:
    return _VERSION_SUFFIX.sub("", jar.name)
