"""Sensors: the Kafka sensor launches ingest runs, the partition sensor recomputes exactly the days
the ingest touched, the observation sensor charts the topic, and failures raise an alert.
The jobs they launch are in jobs.py, the close schedule in schedules.py."""

import json
import time

import dagster as dg

from config.settings import Settings

from .alerts import post_alert
from .assets.ingest import IngestRunConfig, clickstream_landing, clickstream_topic
from .jobs import daily_job, ingest_job
from .partitions import FIRST_DAY, daily_partitions, day_is_closed
from .resources import KafkaResource
from .run_queue import queue_state, retry_suffix

SETTINGS = Settings.from_env()
SENSOR_INTERVAL_S = SETTINGS.sensor_interval_s
# Sensors and the schedule start on by default, so `make run` needs no click; "off" leaves every
# run to the user (the UI test relies on that).
AUTOMATION = dg.DefaultSensorStatus.RUNNING if SETTINGS.automation else dg.DefaultSensorStatus.STOPPED
# A day whose runs keep failing with no new data stops being retried after this many attempts; the
# failure sensor has alerted on each, and the next change to the day starts it again.
DAILY_MAX_ATTEMPTS = 4
# The live path waits on the ingest, so its first retry comes sooner: a run that failed because a
# service restarted under it finds the service back by then (10 s, 20 s, 40 s ... at most 10 min).
INGEST_RETRY_BASE_S = 10
# The sensor's ingest runs stream: one run lands micro-batches and refreshes the live documents for
# up to an hour, instead of paying a run start per cycle (CLICKSTREAM_INGEST_STREAM_S=0 turns it
# off), and reports the days it changed every minute on the way.
STREAMING_RUN = dg.RunConfig(ops={clickstream_landing.key.to_python_identifier(): IngestRunConfig(
    stream_seconds=SETTINGS.ingest_stream_s, trigger_seconds=SETTINGS.ingest_trigger_s,
    idle_seconds=SETTINGS.ingest_idle_s, report_seconds=SETTINGS.ingest_report_s)})
# A streaming run ends at its time limit plus one micro-batch and a refresh. Far beyond that its
# process is gone (killed, the machine restarted): run monitoring then fails it, and the ingest
# lane is free again for the retry.
STREAMING_RUN_LIMIT = ({"dagster/max_runtime": str(SETTINGS.ingest_stream_s + 900)}
                       if SETTINGS.ingest_stream_s else {})


def changed_days(record: dg.EventLogRecord) -> list[str]:
    """The daily partitions a `clickstream_landing` materialization says the ingest changed."""
    metadata = record.asset_materialization.metadata
    return metadata["changed_partitions"].value if "changed_partitions" in metadata else []


@dg.sensor(job=ingest_job, minimum_interval_seconds=SENSOR_INTERVAL_S,
           default_status=AUTOMATION)
def kafka_ingest_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource) -> dg.SensorResult:
    """Launch an ingest run when the topic holds records past the ingest's consumer group position,
    unless one is already queued or running (it will take them). Failed runs are retried with
    backoff. Read-only on Kafka: only the ingest commits the group's offsets."""
    queue = queue_state(context.instance, ingest_job.name)
    busy = queue.waiting or queue.running
    if busy:
        return dg.SensorResult(skip_reason=f"ingest run {busy.run_id[:8]} is {busy.status.value.lower()}; "
                                           "new records join the next run")
    retry_in = queue.retry_in_s(base_s=INGEST_RETRY_BASE_S)
    if retry_in:
        return dg.SensorResult(skip_reason=f"the last {queue.consecutive_failures} ingest run(s) "
                                           f"failed; retrying in {retry_in:.0f} s")
    end, consumed, ahead = _positions(kafka)
    # Past the end, the group's position counts for nothing: every record there is new to it.
    start = {p: 0 if p in ahead else consumed.get(p, 0) for p in end}
    behind = {p: o - start[p] for p, o in end.items() if o > start[p]}
    new_cursor = json.dumps({"end_offsets": end, "consumed": consumed})
    past_the_end = _ahead_of_the_topic(kafka, ahead, end) if ahead else None
    if past_the_end:
        context.log.warning(past_the_end)
    if not behind:
        return dg.SensorResult(skip_reason=past_the_end or f"nothing new: {sum(end.values()):,} "
                               f"records on {kafka.topic}, all consumed", cursor=new_cursor)
    # The same end offsets give the same key, so a tick never launches a second run for records
    # an earlier run was asked to consume; a retry after a failure gets a key of its own, and so
    # does a topic that was recreated (its offsets start again and may repeat an old key).
    run_key = ("ingest:" + ",".join(f"{p}={end[p]}" for p in sorted(end, key=int))
               + "".join(f",ahead:{p}={ahead[p]}" for p in sorted(ahead, key=int))
               + retry_suffix(queue))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, run_config=STREAMING_RUN,
                                    tags={"records_behind": str(sum(behind.values())),
                                          "clickstream/attempt": str(queue.consecutive_failures + 1),
                                          **STREAMING_RUN_LIMIT})],
        cursor=new_cursor)


def _positions(kafka: KafkaResource) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """The topic's end offsets, the ingest group's committed position, and the partitions where
    that position is past the end (the topic was deleted and created again, or truncated)."""
    end = kafka.end_offsets()
    consumed = kafka.committed_offsets(list(end))
    if any(o > end.get(p, 0) for p, o in consumed.items()):
        # A running ingest may have committed past the first read; the end read after the
        # position can only be behind it if the topic lost records.
        end = kafka.end_offsets()
    ahead = {p: o for p, o in consumed.items() if o > end.get(p, 0)}
    return tuple({str(p): o for p, o in offsets.items()} for offsets in (end, consumed, ahead))


def _ahead_of_the_topic(kafka: KafkaResource, ahead: dict[str, int], end: dict[str, int]) -> str:
    partitions = ", ".join(f"{p} (committed {o:,}, end {end.get(p, 0):,})"
                           for p, o in sorted(ahead.items(), key=lambda i: int(i[0])))
    return (f"consumer group {kafka.consumer_group} is past the end of {kafka.topic} on partitions "
            f"{partitions}: the topic was deleted and created again, or truncated. Its records count "
            "as new here; the ingest's checkpoint still decides where it reads")


DUE, LAUNCHED = "due", "launched"


@dg.sensor(job=daily_job, minimum_interval_seconds=SENSOR_INTERVAL_S,
           default_status=AUTOMATION)
def landing_partitions_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Recompute exactly the closed daily partitions each ingest changed (late data): one run per
    day at a time, new changes coalesced into a run that is still queued, failures retried. Open
    days are the live path's until the close schedule makes them final."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    # Cursors of the earlier format held only the storage id.
    cursor = cursor if isinstance(cursor, dict) else {"after": cursor}
    after, days = cursor.get("after"), dict(cursor.get("days", {}))
    live: list[str] = []
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=clickstream_landing.key, after_storage_id=after),
        limit=100, ascending=True).records
    last_day = daily_partitions.get_last_partition_key()
    for record in records:
        for day in changed_days(record):
            if FIRST_DAY <= day <= last_day and not day_is_closed(day):
                live.append(day)
            elif FIRST_DAY <= day <= last_day:
                days[day] = DUE
            else:  # the ingest dead-letters such events; an older lake may still report them
                context.log.warning(f"landing reported day {day}, outside the partitions "
                                    f"{FIRST_DAY}..{last_day}; no run requested")
        after = record.storage_id
    requests, waiting, given_up = [], [], []
    for day in sorted(days):
        queue = queue_state(context.instance, daily_job.name, day)
        if queue.waiting:  # it reads the lake when it starts, so it covers the new data too
            days[day] = LAUNCHED
            waiting.append(day)
            continue
        if queue.running:
            waiting.append(day)  # stays as it is: a due day gets a follow-up once this one ends
            continue
        if days[day] == LAUNCHED:
            newest = queue.records[0].dagster_run.status if queue.records else None
            if newest == dg.DagsterRunStatus.FAILURE and queue.consecutive_failures < DAILY_MAX_ATTEMPTS:
                days[day] = DUE  # retried below once its backoff has passed
            else:
                if newest == dg.DagsterRunStatus.FAILURE:
                    given_up.append(day)
                del days[day]
                continue
        if queue.retry_in_s():
            waiting.append(day)
            continue
        requests.append(dg.RunRequest(
            partition_key=day, run_key=f"{day}:{after}{retry_suffix(queue)}",
            tags={"clickstream/attempt": str(queue.consecutive_failures + 1)}))
        days[day] = LAUNCHED
    new_cursor = json.dumps({"after": after, "days": days})
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)
    reason = (f"runs already queued, running or backing off for {', '.join(waiting)}" if waiting
              else f"{', '.join(given_up)} failed {DAILY_MAX_ATTEMPTS} times in a row; retried "
                   f"again when new data arrives" if given_up
              else f"{', '.join(sorted(set(live)))} still open: served by the live path until "
                   f"the close schedule makes them final" if live
              else "no new landing materializations" if not records
              else "the ingest changed no partition")
    return dg.SensorResult(skip_reason=reason, cursor=new_cursor)


@dg.sensor(minimum_interval_seconds=SENSOR_INTERVAL_S, default_status=AUTOMATION)
def clickstream_topic_observation_sensor(context: dg.SensorEvaluationContext,
                                         kafka: KafkaResource) -> dg.SensorResult:
    """Record the topic's end offsets, the ingest lag and messages/s as observations over time."""
    now = time.time()
    end = kafka.end_offsets()
    total = sum(end.values())
    # The consumer group's lag: the figure Kafka's own tools show for the same group.
    consumed = kafka.committed_offsets(list(end))
    lag = sum(max(o - consumed.get(p, 0), 0) for p, o in end.items())
    previous = json.loads(context.cursor) if context.cursor else None
    rate = ((total - previous["total"]) / (now - previous["at"])) if previous else 0.0
    observation = dg.AssetObservation(asset_key=clickstream_topic.key, metadata={
        "records": total, "ingest_lag": lag, "messages_per_s": round(rate, 1),
        "consumer_group": kafka.consumer_group,
        "end_offsets": dg.MetadataValue.json({str(p): o for p, o in end.items()}),
    })
    return dg.SensorResult(asset_events=[observation], cursor=json.dumps({"total": total, "at": now}))


# A run that fails this soon after another whose failure blamed the same services belongs to the
# same outage (a dead server fails the ingest and the daily run at once): it is logged, and the
# webhook hears of the outage once.
OUTAGE_WINDOW_S = 600


@dg.run_failure_sensor(default_status=AUTOMATION)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    """Log every failed run as an alert, and POST it to CLICKSTREAM_ALERT_WEBHOOK_URL if set,
    once per outage of a service."""
    steps = step_errors(context.get_step_failure_events())
    services = blamed_services(steps)
    alert = {"run_id": context.dagster_run.run_id, "job": context.dagster_run.job_name,
             "error": context.failure_event.message, "steps": steps, "services": services,
             "tags": dict(context.dagster_run.tags)}
    # The step's own error says what to fix; the run's says only which steps failed.
    cause = "; ".join(f"{step}: {error}" for step, error in steps.items()) or alert["error"]
    blame = f" (service: {', '.join(services)})" if services else ""
    context.log.error(f"ALERT: run {alert['run_id']} of {alert['job']} failed{blame}: {cause}")
    earlier = outage_alerted_by(context.instance, context.dagster_run.run_id, services)
    if earlier:
        context.log.info(f"not posted: run {earlier} failed on the same outage of "
                         f"{', '.join(services)} within {OUTAGE_WINDOW_S // 60} minutes before, so "
                         "the webhook has heard of it")
        return
    post_alert({"kind": "run_failure", **alert})


def outage_alerted_by(instance: dg.DagsterInstance, run_id: str, services: list[str]) -> str | None:
    """A run that failed before `run_id`, at most OUTAGE_WINDOW_S earlier, blaming at least the
    same services: the outage's alert came with it (or with a run before it). None when the
    failure blames no service, or is the first of its outage."""
    if not services:
        return None
    this = instance.get_run_record_by_id(run_id)
    failed_at = this.end_time if this and this.end_time else time.time()
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]),
                                           limit=50):
        other = record.dagster_run.run_id
        # Strictly before (ties go by run id), so two failures never silence each other.
        if (not record.end_time or record.end_time < failed_at - OUTAGE_WINDOW_S
                or (record.end_time, other) >= (failed_at, run_id)):
            continue
        failures = [entry.dagster_event for entry in
                    instance.all_logs(other, of_type=dg.DagsterEventType.STEP_FAILURE)]
        if set(services) <= set(blamed_services(step_errors(failures))):
            return other
    return None


# What a step's error says when a service failed under it, by service (the names `stack status`
# shows). The first that matches is blamed.
SERVICE_SIGNS = {
    "spark-connect": ("SparkServerUnavailable", "NO_ACTIVE_SESSION", "INVALID_HANDLE.SESSION",
                      "RETRIES_EXCEEDED"),
    "kafka": ("KafkaException", "KafkaError", "cimpl.", "org.apache.kafka."),
    "elasticsearch": ("elastic_transport.", "elasticsearch.", "IndexingError"),
}


def blamed_service(error: str) -> str | None:
    """The service a step's error points at, if it points at one."""
    return next((service for service, signs in SERVICE_SIGNS.items()
                 if any(sign in error for sign in signs)), None)


def blamed_services(steps: dict[str, str]) -> list[str]:
    """The services that a run's step errors (step_errors) point at, sorted."""
    return sorted({service for error in steps.values() if (service := blamed_service(error))})


def step_errors(failures: list[dg.DagsterEvent]) -> dict[str, str]:
    """Each failed step's error as the step raised it (`spark.session.SparkServerUnavailable: the
    Spark Connect server at ... did not answer`), not Dagster's wrapper around it."""
    errors = {}
    for event in failures:
        error = event.step_failure_data.error
        while error.cause is not None and error.cls_name and error.cls_name.startswith("Dagster"):
            error = error.cause
        errors[event.step_key] = error.message.strip()
    return errors


SENSORS = [kafka_ingest_sensor, landing_partitions_sensor, clickstream_topic_observation_sensor,
           run_failure_alert_sensor]
