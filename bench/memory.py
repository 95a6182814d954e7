"""Resident memory of the whole stack, sampled in the background while the benchmark runs.

The stack is this process with everything it started (producer processes, an in-process Spark's
JVM) plus the Kafka, Elasticsearch and Spark Connect services that `clickstream stack up` runs.
Samples carry wall-clock times, so the peak of any stage is the maximum over that stage's window.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from config.settings import Settings
from stack import elasticsearch, kafka, spark_connect
from stack.process import read_pid_file, tree_rss_bytes

GIB = 1024**3


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    pipeline: int  # this process and its descendants (producers, an in-process Spark)
    kafka: int
    elasticsearch: int
    spark_connect: int  # the long-lived Spark server the runs are clients of

    @property
    def total(self) -> int:
        return self.pipeline + self.kafka + self.elasticsearch + self.spark_connect


@dataclass
class MemorySampler:
    settings: Settings
    interval_s: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        services = [read_pid_file(self.settings.state_dir, name)
                    for name in (kafka.NAME, elasticsearch.NAME, spark_connect.NAME)]
        # Services started elsewhere (a remote cluster) have no pid file here and count as 0.
        pids = [s.pid if s and s.is_alive() else None for s in services]
        self._thread = threading.Thread(target=self._run, args=(pids,), daemon=True,
                                        name="bench-memory")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self, pids: list[int | None]) -> None:
        own = os.getpid()
        while not self._stop.is_set():
            services = (tree_rss_bytes(pid) if pid else 0 for pid in pids)
            self.samples.append(Sample(time.time(), tree_rss_bytes(own), *services))
            self._stop.wait(self.interval_s)

    def peak(self, start: float, end: float) -> dict | None:
        """Peak resident memory between two wall-clock times, in GiB, whole stack and per part."""
        window = [s for s in self.samples if start <= s.at <= end]
        if not window:
            return None
        top = max(window, key=lambda s: s.total)
        return {"stack_gib": round(top.total / GIB, 2), "pipeline_gib": round(top.pipeline / GIB, 2),
                "kafka_gib": round(top.kafka / GIB, 2),
                "elasticsearch_gib": round(top.elasticsearch / GIB, 2),
                "spark_connect_gib": round(top.spark_connect / GIB, 2)}
