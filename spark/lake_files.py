"""Idempotent publishing of a batch's Parquet files into a hive-partitioned table.

Spark names its output files at random, so a replayed micro-batch would add a second copy. A batch
is therefore written to a staging folder, and published under deterministic names
(part-b<batch>-<n>) recorded in a manifest written before any file moves. A replay first removes
whatever its manifest says the earlier attempt published, then publishes again: the same batch
can be committed any number of times and its rows appear exactly once. Readers ignore the
underscore-prefixed staging and manifest folders. Works on any Hadoop filesystem (local, s3a).
"""

from __future__ import annotations

import json

from pyspark.sql import DataFrame, SparkSession


class HadoopFS:
    """The few Hadoop FileSystem calls the lake needs, through the JVM gateway."""

    def __init__(self, spark: SparkSession, root: str):
        jvm = spark.sparkContext._jvm
        self._jvm = jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()
        self.root = root.rstrip("/")
        self.fs = jvm.org.apache.hadoop.fs.Path(self.root).getFileSystem(self._conf)

    def path(self, location: str):
        return self._jvm.org.apache.hadoop.fs.Path(location)

    def exists(self, location: str) -> bool:
        return self.fs.exists(self.path(location))

    def delete(self, location: str, recursive: bool = False) -> None:
        self.fs.delete(self.path(location), recursive)

    def rename(self, src: str, dst: str) -> None:
        self.fs.mkdirs(self.path(dst).getParent())
        if not self.fs.rename(self.path(src), self.path(dst)):
            raise OSError(f"could not move {src} to {dst}")

    def list_files(self, location: str, suffix: str = "") -> list[tuple[str, int]]:
        """(path, size) of every file below `location`, recursively, sorted by path."""
        if not self.exists(location):
            return []
        found = []
        iterator = self.fs.listFiles(self.path(location), True)
        while iterator.hasNext():
            status = iterator.next()
            name = status.getPath().toString()
            if name.endswith(suffix):
                found.append((name, status.getLen()))
        return sorted(found)

    def read_text(self, location: str) -> str | None:
        if not self.exists(location):
            return None
        stream = self.fs.open(self.path(location))
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            lines = []
            line = reader.readLine()
            while line is not None:
                lines.append(line)
                line = reader.readLine()
            return "\n".join(lines)
        finally:
            stream.close()

    def write_text(self, location: str, text: str) -> None:
        """Write a small file atomically: to a temporary name, then rename over the target."""
        tmp = location + ".tmp"
        out = self.fs.create(self.path(tmp), True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        self.fs.delete(self.path(location), False)
        self.rename(tmp, location)


def publish_batch(fs: HadoopFS, frame: DataFrame, table: str, batch_id: int,
                  partition_by: list[str], options: dict[str, str] | None = None
                  ) -> list[tuple[str, int]]:
    """Write `frame` into `table` as batch `batch_id`, exactly once; returns (file, bytes) pairs."""
    staging = f"{table}/_staging/batch-{batch_id:010d}"
    manifest = f"{table}/_manifests/batch-{batch_id:010d}.json"
    frame.write.options(**(options or {})).mode("overwrite").partitionBy(*partition_by).parquet(staging)
    previous = fs.read_text(manifest)
    if previous:  # a replay of this batch: withdraw what the earlier attempt published
        for path in json.loads(previous)["files"]:
            fs.delete(path)
    staged = fs.list_files(staging, ".parquet")
    staging_root = fs.path(staging).toUri().getPath()
    targets = []
    for index, (path, size) in enumerate(staged):
        relative_dir = fs.path(path).getParent().toUri().getPath()[len(staging_root):].strip("/")
        name = f"part-b{batch_id:010d}-{index:05d}.parquet"
        target = f"{table}/{relative_dir}/{name}" if relative_dir else f"{table}/{name}"
        targets.append((path, target, size))
    fs.write_text(manifest, json.dumps({"batch_id": batch_id, "files": [t for _, t, _ in targets]}))
    for source, target, _ in targets:
        fs.delete(target)
        fs.rename(source, target)
    fs.delete(staging, recursive=True)
    return [(target, size) for _, target, size in targets]


def replace_days(fs: HadoopFS, frame: DataFrame, table: str, days: list[str]) -> dict[str, dict]:
    """Replace the `event_date=D` partitions of `table` for `days` with `frame`'s rows.

    Written under a temporary folder first, then swapped in day by day, so a failed job leaves
    the previous version of each day in place and a re-run gives the same output. A day with no
    rows ends up with no partition. Returns {day: {"files": n, "bytes": b}}.
    """
    import uuid

    tmp = f"{table}/_tmp/{uuid.uuid4().hex}"
    frame.write.mode("overwrite").partitionBy("event_date").parquet(tmp)
    written: dict[str, dict] = {}
    for day in days:
        final, staged = f"{table}/event_date={day}", f"{tmp}/event_date={day}"
        fs.delete(final, recursive=True)
        if fs.exists(staged):
            fs.rename(staged, final)
            files = fs.list_files(final, ".parquet")
            written[day] = {"files": len(files), "bytes": sum(size for _, size in files)}
        else:
            written[day] = {"files": 0, "bytes": 0}
    fs.delete(tmp, recursive=True)
    return written
