"""The ingest checkpoint's offset log: what the query consumed, read without starting Spark (a
local lake, for sensors) or through Spark (any filesystem, for the micro-batch's own statistics)."""

from __future__ import annotations

import json
from pathlib import Path

from pyspark.sql import SparkSession


def committed_offsets(checkpoint: str, topic: str) -> dict[str, int] | None:
    """End offsets of the last committed micro-batch; {} before the first, None when the
    checkpoint is not on a local filesystem (then callers rely on their own cursor)."""
    if "://" in checkpoint and not checkpoint.startswith("file://"):
        return None
    root = Path(checkpoint.removeprefix("file://"))
    commits = [int(p.name) for p in (root / "commits").glob("*") if p.name.isdigit()]
    if not commits:
        return {}
    return _offsets(topic, (root / "offsets" / str(max(commits))).read_text())


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
