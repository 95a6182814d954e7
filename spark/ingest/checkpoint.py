"""The ingest checkpoint, read through Spark so any Hadoop filesystem works (s3a too): the query's
id and each micro-batch's offsets, for the batch's own statistics. Lag is read from Kafka instead
(see consumer_group.py)."""

from __future__ import annotations

import json
from urllib.parse import urlparse

from pyspark.sql import SparkSession


def logged_offsets(spark: SparkSession, checkpoint: str, topic: str, batch_id: int) -> dict[str, int]:
    """End offsets of micro-batch `batch_id`, as its offset log file records them."""
    return _offsets(topic, read_text(spark, f"{checkpoint}/offsets/{batch_id}"))


def query_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query's id: it survives restarts, and a new checkpoint gets a new one."""
    return json.loads(read_text(spark, f"{checkpoint}/metadata"))["id"]


def read_text(spark: SparkSession, path: str) -> str:
    """A small file of the checkpoint, through Spark, so any Hadoop filesystem works (s3a too)."""
    return "\n".join(row.value for row in spark.read.text(path).collect())


def _offsets(topic: str, text: str) -> dict[str, int]:
    # An offset log file: a version line, the batch's metadata, then one line per source.
    return {p: int(o) for p, o in json.loads(text.splitlines()[2])[topic].items()}


def file_manager_conf(checkpoint: str) -> dict[str, str]:
    """Session settings for a query whose checkpoint is at `checkpoint`. On local disk, its offset
    and commit logs and state changelogs are renamed through FileSystem, not FileContext, whose
    rename forks `readlink` four times per file without Hadoop's native library (see
    LOCAL_DISK_CONF in spark/session.py). Renames within one local disk are atomic either way.
    Other file systems keep Spark's default, whose renames never overwrite on HDFS."""
    scheme = urlparse(checkpoint).scheme
    if scheme not in ("", "file"):
        return {}
    return {"spark.sql.streaming.checkpointFileManagerClass":
            "org.apache.spark.sql.execution.streaming.FileSystemBasedCheckpointFileManager"}
