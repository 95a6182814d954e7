"""Spark sessions and job configs built from the documented settings (CLI, assets, benchmarks)."""

from __future__ import annotations

from pyspark.sql import SparkSession

from spark.ingest.stream import IngestConfig
from spark.session import build_session, pipeline_conf

from .settings import Settings
from .stack.spark_jars import spark_jars


def server_conf(settings: Settings) -> dict[str, str]:
    """What the pipeline's Spark runs with: the Connect server's settings, or an in-process one's."""
    return pipeline_conf(settings.spark_master, settings.spark_shuffle_partitions)


def pipeline_spark(settings: Settings, app_name: str, conf: dict[str, str] | None = None
                   ) -> SparkSession:
    """A client of the Connect server (CLICKSTREAM_SPARK_REMOTE), or else an in-process Spark
    with the same settings; `conf` holds session settings on top (both kinds take them)."""
    if settings.spark_remote:
        return build_session(app_name, remote=settings.spark_remote, conf=conf)
    return build_session(
        app_name, master=settings.spark_master, driver_memory=settings.spark_driver_memory,
        jars=spark_jars(settings), conf={**server_conf(settings), **(conf or {})})


def ingest_config(settings: Settings, **overrides) -> IngestConfig:
    return IngestConfig(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        lake_root=settings.lake_dir,
        topic=settings.topic,
        dlq_topic=settings.dlq_topic,
        first_day=settings.first_day,
        **overrides,
    )
