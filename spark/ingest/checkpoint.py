"""The ingest checkpoint: the query's id and each micro-batch's offsets, for the batch's own
statistics. Read from disk when it is local, else through Spark so any Hadoop filesystem works
(s3a too). Lag is read from Kafka instead (see consumer_group.py)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

from pyspark.sql import SparkSession


def logged_offsets(spark: SparkSession, checkpoint: str, topic: str, batch_id: int) -> dict[str, int]:
    """End offsets of micro-batch `batch_id`, as its offset log file records them."""
    return _offsets(topic, read_text(spark, f"{checkpoint}/offsets/{batch_id}"))


def query_id(spark: SparkSession, checkpoint: str) -> str:
    """The streaming query's id: it survives restarts, and a new checkpoint gets a new one."""
    return json.loads(read_text(spark, f"{checkpoint}/metadata"))["id"]


def read_text(spark: SparkSession, path: str) -> str:
    """A small file of the checkpoint. A local checkpoint is on the driver's disk, where the batch
    writer runs, so it is read straight from there: a Spark job per micro-batch cost the live path
    time for nothing. Any other filesystem goes through Spark."""
    if _is_local(path):
        return Path(urlparse(path).path).read_text().rstrip("\n")
    return "\n".join(row.value for row in spark.read.text(path).collect())


def _is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def _offsets(topic: str, text: str) -> dict[str, int]:
    # An offset log file: a version line, the batch's metadata, then one line per source.
    return {p: int(o) for p, o in json.loads(text.splitlines()[2])[topic].items()}


def file_manager_conf(checkpoint: str) -> dict[str, str]:
    """Session settings for a query whose checkpoint is at `checkpoint`. On local disk, its offset
    and commit logs and state changelogs are renamed through FileSystem, not FileContext, whose
    rename forks `readlink` four times per file without Hadoop's native library (see
    LOCAL_DISK_CONF in spark/session.py). Renames within one local disk are atomic either way.
    Other file systems keep Spark's default, whose renames never overwrite on HDFS."""
    if not _is_local(checkpoint):
        return {}
    return {"spark.sql.streaming.checkpointFileManagerClass":
            "org.apache.spark.sql.execution.streaming.FileSystemBasedCheckpointFileManager"}
