"""Sensors: the Kafka sensor launches ingest runs, the partition sensor recomputes exactly the days
the ingest touched, the observation sensor charts the topic, and failures raise an alert."""

import json
import os
import time
import urllib.request
from datetime import timedelta

import dagster as dg

from spark.ingest.checkpoint import committed_offsets

from .assets.ingest import clickstream_landing, clickstream_topic
from .resources import KafkaResource, LakeResource

SENSOR_INTERVAL_S = int(os.environ.get("CLICKSTREAM_SENSOR_INTERVAL_S", "30"))
# Sensors and the schedule start on by default, so `make run` needs no click; "off" leaves every
# run to the user (the UI test relies on that).
AUTOMATION = (dg.DefaultSensorStatus.STOPPED
              if os.environ.get("CLICKSTREAM_AUTOMATION", "on").lower() == "off"
              else dg.DefaultSensorStatus.RUNNING)

ingest_job = dg.define_asset_job(
    "ingest_job", selection=[clickstream_landing],
    description="Consume everything new on the topic into the landing lake.")
daily_job = dg.define_asset_job(
    "daily_job", selection=dg.AssetSelection.groups("lake", "analytics", "serving"),
    description="Compact, aggregate, validate and index the given days.")


@dg.sensor(job=ingest_job, minimum_interval_seconds=SENSOR_INTERVAL_S,
           default_status=AUTOMATION)
def kafka_ingest_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource,
                        lake: LakeResource) -> dg.SensorResult:
    """Launch an ingest run when the topic holds records the ingest checkpoint has not consumed.
    Read-only on Kafka: Spark's checkpoint owns consumption, so no offset is ever committed here."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    end = {str(p): o for p, o in kafka.end_offsets().items()}
    consumed = committed_offsets(lake.ingest_checkpoint, kafka.topic)
    if consumed is None:  # a remote lake: compare with what this sensor last requested
        consumed = cursor.get("requested", {})
    behind = {p: o - consumed.get(p, 0) for p, o in end.items() if o > consumed.get(p, 0)}
    new_cursor = json.dumps({"end_offsets": end, "consumed": consumed,
                             "requested": end if behind else cursor.get("requested", {})})
    if not behind:
        return dg.SensorResult(skip_reason=f"nothing new: {sum(end.values()):,} records on "
                                           f"{kafka.topic}, all consumed", cursor=new_cursor)
    # The same end offsets always give the same key, so a tick never launches a second run
    # for records an earlier run was asked to consume.
    run_key = "ingest:" + ",".join(f"{p}={end[p]}" for p in sorted(end, key=int))
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"records_behind": str(sum(behind.values()))})],
        cursor=new_cursor)


@dg.sensor(job=daily_job, minimum_interval_seconds=SENSOR_INTERVAL_S,
           default_status=AUTOMATION)
def landing_partitions_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Recompute exactly the daily partitions each ingest changed, late days included."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=clickstream_landing.key,
                              after_storage_id=int(context.cursor) if context.cursor else None),
        limit=100, ascending=True).records
    if not records:
        return dg.SensorResult(skip_reason="no new landing materializations")
    requests = {}
    for record in records:
        metadata = record.asset_materialization.metadata
        for day in metadata["changed_partitions"].value if "changed_partitions" in metadata else []:
            requests[day] = dg.RunRequest(partition_key=day, run_key=f"{day}:{record.storage_id}")
    return dg.SensorResult(run_requests=list(requests.values()),
                           cursor=str(records[-1].storage_id),
                           skip_reason=None if requests else "the ingest changed no partition")


@dg.sensor(minimum_interval_seconds=SENSOR_INTERVAL_S, default_status=AUTOMATION)
def clickstream_topic_observation_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource,
                                         lake: LakeResource) -> dg.SensorResult:
    """Record the topic's end offsets, the ingest lag and messages/s as observations over time."""
    now = time.time()
    end = kafka.end_offsets()
    total = sum(end.values())
    consumed = committed_offsets(lake.ingest_checkpoint, kafka.topic) or {}
    lag = sum(o - consumed.get(str(p), 0) for p, o in end.items())
    previous = json.loads(context.cursor) if context.cursor else None
    rate = ((total - previous["total"]) / (now - previous["at"])) if previous else 0.0
    observation = dg.AssetObservation(asset_key=clickstream_topic.key, metadata={
        "records": total, "ingest_lag": lag, "messages_per_s": round(rate, 1),
        "end_offsets": dg.MetadataValue.json({str(p): o for p, o in end.items()}),
    })
    return dg.SensorResult(asset_events=[observation], cursor=json.dumps({"total": total, "at": now}))


@dg.run_failure_sensor(default_status=AUTOMATION)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    """Log every failed run as an alert, and POST it to CLICKSTREAM_ALERT_WEBHOOK_URL if set."""
    alert = {"run_id": context.dagster_run.run_id, "job": context.dagster_run.job_name,
             "error": context.failure_event.message, "tags": dict(context.dagster_run.tags)}
    context.log.error(f"ALERT: run {alert['run_id']} of {alert['job']} failed: {alert['error']}")
    url = os.environ.get("CLICKSTREAM_ALERT_WEBHOOK_URL")
    if url:
        request = urllib.request.Request(url, data=json.dumps(alert).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10):
            pass


# A day is closed once late events can no longer be expected: two hours after midnight UTC by
# default (the generator's and trackers' lateness stays well inside that), the finished day is
# recomputed and tagged as final. Stragglers after that still reopen it through the partition
# sensor, so nothing is lost.
CLOSE_HOUR_UTC = int(os.environ.get("CLICKSTREAM_DAY_CLOSE_HOUR_UTC", "2"))


@dg.schedule(job=daily_job, cron_schedule=f"0 {CLOSE_HOUR_UTC} * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus(AUTOMATION.value))
def daily_close_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Recompute the day that just ended, once its lateness window has passed, as final."""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"close:{day}", partition_key=day, tags={"clickstream/day": "final"})

SENSORS = [kafka_ingest_sensor, landing_partitions_sensor, clickstream_topic_observation_sensor,
           run_failure_alert_sensor]
JOBS = [ingest_job, daily_job]
SCHEDULES = [daily_close_schedule]
