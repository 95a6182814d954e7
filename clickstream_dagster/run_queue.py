"""What the sensors ask of the run queue before requesting a run: is one already waiting or running
for the same work, and has the last one failed recently enough that a retry must wait?

Asking the instance, not a cursor, keeps the answer right after a daemon restart or a run launched
by hand from the UI. At most one run per unit of work waits in the queue, so the queue stays
bounded whatever the event rate: new data is coalesced into the run that is already waiting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dagster as dg

WAITING = frozenset({dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                     dg.DagsterRunStatus.STARTING})
RUNNING = frozenset({dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING})
# A failed run is retried after 30 s, 60 s, 120 s ... at most 10 minutes apart.
RETRY_BASE_S = 30
RETRY_MAX_S = 600
HISTORY = 8  # runs looked at to count consecutive failures


@dataclass(frozen=True)
class QueueState:
    """The newest runs for one unit of work (a job, or a job and a partition)."""

    records: list  # newest first

    @property
    def waiting(self) -> dg.DagsterRun | None:
        return next((r.dagster_run for r in self.records if r.dagster_run.status in WAITING), None)

    @property
    def running(self) -> dg.DagsterRun | None:
        return next((r.dagster_run for r in self.records if r.dagster_run.status in RUNNING), None)

    @property
    def consecutive_failures(self) -> int:
        count = 0
        for record in self.records:
            if record.dagster_run.status != dg.DagsterRunStatus.FAILURE:
                break
            count += 1
        return count

    def retry_in_s(self, now: float | None = None, base_s: float | None = None) -> float:
        """Seconds until a retry after the newest failure may start; 0 when none is owed. The
        waits double from `base_s` (RETRY_BASE_S by default)."""
        failures = self.consecutive_failures
        if not failures:
            return 0.0
        base_s = RETRY_BASE_S if base_s is None else base_s
        delay = min(base_s * 2 ** (failures - 1), RETRY_MAX_S)
        failed_at = self.records[0].end_time or self.records[0].update_timestamp.timestamp()
        return max(0.0, failed_at + delay - (now if now is not None else time.time()))


def queue_state(instance: dg.DagsterInstance, job_name: str, partition: str | None = None
                ) -> QueueState:
    tags = {"dagster/partition": partition} if partition else None
    records = instance.get_run_records(dg.RunsFilter(job_name=job_name, tags=tags), limit=HISTORY)
    return QueueState(list(records))


def retry_suffix(state: QueueState) -> str:
    """Run keys are unique per attempt, so a retry of the same work is never deduplicated away."""
    failures = state.consecutive_failures
    return f":retry-{failures}" if failures else ""
