"""The jars the pipeline's Spark needs beyond pyspark's own: Kafka's connector and Delta Lake.

The local stack fetches them with mvn into `<cache>/<artifact>-<version>/`; runs only read those
folders, so starting a session never calls Maven. On a cluster, spark-submit's `--jars` or the
cluster's own classpath supplies the same artifacts.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pyspark

# Spark's Kafka connector must match the installed pyspark exactly.
SPARK_VERSION = version("pyspark")
# Delta Lake's release for Spark 4.0 (delta-spark 4.0.x is built against Spark 4.0.0).
DELTA_VERSION = "4.0.0"

# folder name -> the Maven coordinates resolved into it, with their runtime dependencies
ARTIFACTS = {
    f"spark-sql-kafka-{SPARK_VERSION}": [f"org.apache.spark:spark-sql-kafka-0-10_2.13:{SPARK_VERSION}"],
    f"delta-spark-{DELTA_VERSION}": [f"io.delta:delta-spark_2.13:{DELTA_VERSION}"],
}
# Written by the fetch once every jar of a folder is in place.
COMPLETE_MARKER = ".complete"

_VERSION_SUFFIX = re.compile(r"-\d[^-]*\.jar$")


class JarsMissing(RuntimeError):
    pass


def installed_jars(cache_dir: Path) -> list[str]:
    """Every jar of ARTIFACTS under `cache_dir`, as absolute paths; a clear error if one is missing."""
    jars: list[Path] = []
    for folder in ARTIFACTS:
        path = cache_dir / folder
        if not (path / COMPLETE_MARKER).exists():
            raise JarsMissing(f"Spark's jars are not in {path}: run `clickstream stack up` (or "
                              f"`make up`) once to fetch them, or set CLICKSTREAM_CACHE_DIR to "
                              f"where they are")
        jars.extend(sorted(path.glob("*.jar")))
    return not_shipped(jars)


def not_shipped(jars: list[Path]) -> list[str]:
    """The jars pyspark does not already ship: a second copy of scala-library, hadoop-client or
    snappy on the classpath invites conflicts."""
    shipped = {_artifact(p) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [str(p) for p in jars if _artifact(p) not in shipped]


def _artifact(jar: Path) -> str:
    return _VERSION_SUFFIX.sub("", jar.name)
