"""The Python worker daemon of the pipeline's Spark: pyspark's own, with zip archives' directory
caches kept across tasks.

Every task that runs Python code (the ingest's enrichment UDFs) starts with
`importlib.invalidate_caches()`. On Python 3.10 and 3.11 that makes every zip importer re-read its
archive's whole directory at once (CPython gh-103200, made lazy in 3.12). pyspark is imported from
`pyspark.zip` in a worker, which leaves 16 zip importers behind, so each task spent about 350 ms
re-reading that archive's 1,220 entries: 2 s of an ingest micro-batch, and two thirds of the
Python workers' samples in a profiled in-process ingest.
The archives on a worker's path (pyspark's, py4j's and
shipped --py-files) never change under a running worker, so here invalidating them does nothing,
as on Python 3.9 and before. Set as `spark.python.daemon.module` (spark/session.py).
"""

from __future__ import annotations

import sys
import zipimport


def keep_directory(self: zipimport.zipimporter) -> None:
    """Python 3.9's zip importer: the archive's directory is read once, when it is opened."""


if sys.version_info < (3, 12):
    zipimport.zipimporter.invalidate_caches = keep_directory

# pyspark's daemon reads the worker module from sys.argv, as Spark passes it, and forks every
# worker from this process, so the workers inherit the change above.
from pyspark.daemon import manager  # noqa: E402

if __name__ == "__main__":
    manager()
