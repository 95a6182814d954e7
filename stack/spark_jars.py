"""Fetches Spark's Kafka connector and Delta Lake jars with mvn into the folders runs read them from.

`spark.jars.packages` resolves through Ivy and ignores Maven settings, so the project resolves the
artifacts with mvn itself and passes plain jar paths (see spark/jars.py).
"""

from __future__ import annotations

from clickstream_dagster.settings import Settings
from spark.jars import ARTIFACTS, installed_jars

from . import maven


def fetch_spark_jars(settings: Settings) -> list[str]:
    """Every jar the pipeline's Spark needs beyond pyspark's own, fetched once, as absolute paths."""
    for folder, coordinates in ARTIFACTS.items():
        maven.copy_dependencies(folder, coordinates, settings.cache_dir / folder,
                                settings=settings.maven_settings)
    return installed_jars(settings.cache_dir)
