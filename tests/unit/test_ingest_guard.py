"""Two ingests never share the checkpoint, even on a bare instance with no run limits: the step
refuses to start beside an older ingest run, before it touches Kafka, Spark or the lake."""

from __future__ import annotations

import dagster as dg

from clickstream_dagster.assets.ingest import INGEST_JOB, clickstream_landing
from clickstream_dagster.definitions import build_resources
from config.settings import Settings
from tests.helpers import finish, queue_run


def _materialize_landing(instance):
    return dg.materialize([clickstream_landing], instance=instance, raise_on_error=False,
                          resources=build_resources(Settings()))


def test_an_ingest_refuses_to_run_beside_an_older_one():
    with dg.instance_for_test() as instance:
        running = queue_run(instance, dg.RunRequest(run_key="ingest:0=10"), job_name=INGEST_JOB)
        finish(instance, running, dg.DagsterRunStatus.STARTED)
        result = _materialize_landing(instance)
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        message = failure.step_failure_data.user_failure_data.description
        assert running.run_id in message and "never share the checkpoint" in message
