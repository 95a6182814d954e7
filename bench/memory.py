"""Resident memory of the whole stack, sampled in the background while the benchmark runs.

The stack is this process with everything it started (producer processes, an in-process Spark's
JVM) plus the services that `clickstream stack up` runs: Kafka's brokers, Elasticsearch's nodes,
the Spark Connect server and, on a local standalone cluster, its master and workers (whose trees
hold the executors).
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
from stack.services import local_services

GIB = 1024**3
PARTS = (kafka.NAME, elasticsearch.NAME, "spark_connect", "spark_cluster")


@dataclass(frozen=True)
class Sample:
    at: float  # time.time()
    pipeline: int  # this process and its descendants (producers, an in-process Spark)
    kafka: int
    elasticsearch: int
    spark_connect: int  # the long-lived Spark server the runs are clients of
    spark_cluster: int  # a local standalone master and its workers, executors included

    @property
    def total(self) -> int:
        return (self.pipeline + self.kafka + self.elasticsearch + self.spark_connect
                + self.spark_cluster)


def _part(name: str) -> str:
    """The Sample field a service of the stack counts in."""
    for part in (kafka.NAME, elasticsearch.NAME):
        if name == part or name.startswith(f"{part}-"):
            return part
    return "spark_connect" if name == spark_connect.NAME else "spark_cluster"


@dataclass
class MemorySampler:
    settings: Settings
    interval_s: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> MemorySampler:
        # Services started elsewhere (a remote cluster) have no pid file here and count as 0.
        parts: dict[str, list[int]] = {part: [] for part in PARTS}
        for service in local_services(self.settings):
            process = read_pid_file(self.settings.state_dir, service.name)
            if process and process.is_alive():
                parts[_part(service.name)].append(process.pid)
        self._thread = threading.Thread(target=self._run, args=(parts,), daemon=True,
                                        name="bench-memory")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self, parts: dict[str, list[int]]) -> None:
        own = os.getpid()
        while not self._stop.is_set():
            services = {part: sum(tree_rss_bytes(pid) for pid in pids) for part, pids in parts.items()}
            self.samples.append(Sample(time.time(), tree_rss_bytes(own), **services))
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
                "spark_connect_gib": round(top.spark_connect / GIB, 2),
                "spark_cluster_gib": round(top.spark_cluster / GIB, 2)}
