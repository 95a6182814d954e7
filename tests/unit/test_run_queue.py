"""The partition sensor against a real Dagster instance's run queue: one run per day at a time,
new changes coalesced into a queued run, a follow-up after a running one, failures retried with
backoff, days outside the partitions never requested, and open days left to the live path."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import dagster as dg
import pytest

from clickstream_dagster import run_queue
from clickstream_dagster.definitions import defs
from clickstream_dagster.partitions import open_days
from clickstream_dagster.sensors import DAILY_MAX_ATTEMPTS, landing_partitions_sensor
from tests.helpers import finish, queue_run, report_landing

DAY = "2026-11-20"


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def tick(instance, cursor):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
    return landing_partitions_sensor.evaluate_tick(context)


def test_changes_join_a_queued_run_and_a_running_one_gets_one_follow_up(instance):
    report_landing(instance, DAY, "2026-11-19")
    first = tick(instance, None)
    assert sorted(r.partition_key for r in first.run_requests) == ["2026-11-19", DAY]
    runs = {r.partition_key: queue_run(instance, r) for r in first.run_requests}

    # Three more ingests while the runs wait in the queue: nothing new is requested.
    cursor = first.cursor
    for _ in range(3):
        report_landing(instance, DAY)
        result = tick(instance, cursor)
        assert not result.run_requests and DAY in result.skip_message
        cursor = result.cursor

    # Once a run has started it may have read the lake already: one follow-up, after it ends.
    finish(instance, runs[DAY], dg.DagsterRunStatus.STARTED)
    report_landing(instance, DAY)
    report_landing(instance, DAY)
    while_running = tick(instance, cursor)
    assert not while_running.run_requests
    finish(instance, runs[DAY], dg.DagsterRunStatus.SUCCESS)
    finish(instance, runs["2026-11-19"], dg.DagsterRunStatus.SUCCESS)
    follow_up = tick(instance, while_running.cursor)
    assert [r.partition_key for r in follow_up.run_requests] == [DAY]
    # Both days done, nothing new: the cursor forgets them and the sensor goes quiet.
    finish(instance, queue_run(instance, follow_up.run_requests[0]), dg.DagsterRunStatus.SUCCESS)
    quiet = tick(instance, follow_up.cursor)
    assert not quiet.run_requests and json.loads(quiet.cursor)["days"] == {}


class _Clock:
    """The run queue's clock, moved on by the test instead of slept through."""

    def __init__(self):
        self.ahead_s = 0.0

    def time(self) -> float:
        return time.time() + self.ahead_s


def test_a_failed_day_is_retried_with_backoff_then_left_for_new_data(instance, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(run_queue, "time", clock)
    monkeypatch.setattr(run_queue, "RETRY_BASE_S", 1)
    report_landing(instance, DAY)
    result = tick(instance, None)
    keys = []
    for attempt in range(1, DAILY_MAX_ATTEMPTS + 1):
        (request,) = result.run_requests
        assert request.tags["clickstream/attempt"] == str(attempt)
        keys.append(request.run_key)
        finish(instance, queue_run(instance, request), dg.DagsterRunStatus.FAILURE)
        result = tick(instance, result.cursor)  # straight after the failure: too early
        assert not result.run_requests
        if attempt < DAILY_MAX_ATTEMPTS:
            assert "backing off" in result.skip_message
            clock.ahead_s += 2 ** (attempt - 1) + 0.2  # 1 s, 2 s, 4 s ... with the base set to 1 s
            result = tick(instance, result.cursor)
    assert len(set(keys)) == DAILY_MAX_ATTEMPTS  # every retry has a run key of its own
    # Given up until the day changes again.
    assert f"failed {DAILY_MAX_ATTEMPTS} times" in result.skip_message
    report_landing(instance, DAY)
    clock.ahead_s += 2 ** DAILY_MAX_ATTEMPTS + 0.2
    again = tick(instance, result.cursor)
    assert [r.partition_key for r in again.run_requests] == [DAY]


def test_days_outside_the_partitions_are_never_requested(instance):
    report_landing(instance, "2999-01-01", "1999-12-31", DAY)
    result = tick(instance, None)
    assert [r.partition_key for r in result.run_requests] == [DAY]


def test_open_days_are_left_to_the_live_path(instance):
    today = datetime.now(UTC).date().isoformat()
    report_landing(instance, today, DAY)
    result = tick(instance, None)
    assert [r.partition_key for r in result.run_requests] == [DAY]  # closed: late data
    report_landing(instance, today)
    quiet = tick(instance, result.cursor)
    assert not quiet.run_requests and f"{today} still open" in quiet.skip_message


@pytest.mark.parametrize(("now", "days"), [
    (datetime(2026, 11, 23, 1, 59, tzinfo=UTC), ["2026-11-22", "2026-11-23", "2026-11-24"]),
    (datetime(2026, 11, 23, 2, 0, tzinfo=UTC), ["2026-11-23", "2026-11-24"]),
])
def test_yesterday_stays_open_until_the_close_hour(now, days):
    assert open_days(now) == days
