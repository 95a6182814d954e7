"""The close schedule: a finished day becomes final once its lateness window has passed; and the
retention schedule, which expires old data once a day."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from config.settings import Settings

from .assets.ingest import clickstream_landing
from .jobs import daily_job
from .retention import retention_job
from .sensors import AUTOMATION, changed_days

# A day is closed once late events can no longer be expected: two hours after midnight UTC by
# default (the generator's and trackers' lateness stays well inside that), the finished day is
# recomputed and tagged as final. Stragglers after that still reopen it through the partition
# sensor, so nothing is lost.
CLOSE_HOUR_UTC = Settings.from_env().day_close_hour_utc


@dg.schedule(job=daily_job, cron_schedule=f"0 {CLOSE_HOUR_UTC} * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus(AUTOMATION.value))
def daily_close_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Recompute the day that just ended, once its lateness window has passed, as final."""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    # A day before the pipeline's first ingest has nothing to make final: its run would only fail
    # the has_rows check and alert.
    if not _ingest_landed(context.instance, day):
        return dg.SkipReason(f"no ingest reported events dated {day}, so there is nothing to make "
                             f"final; materialize the partition by hand to judge it anyway")
    return dg.RunRequest(run_key=f"close:{day}", partition_key=day, tags={"clickstream/day": "final"})


def _ingest_landed(instance: dg.DagsterInstance, day: str) -> bool:
    """Whether any ingest run reported landing events dated `day`, late ones included."""
    # The ingest dead-letters events dated more than a day after their ingest day, so all of a
    # day's events landed after the midnight that began the day before it.
    since = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(days=1)
    landings = dg.AssetRecordsFilter(asset_key=clickstream_landing.key,
                                     after_timestamp=since.timestamp())
    cursor = None
    while True:  # a streaming run reports every minute: some 3,000 records at most
        page = instance.fetch_materializations(landings, limit=500, cursor=cursor)
        if any(day in changed_days(record) for record in page.records):
            return True
        if not page.has_more:
            return False
        cursor = page.cursor


# Half an hour after the close, so the day's final run usually goes first in the daily lane.
retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule", job=retention_job, cron_schedule=f"30 {CLOSE_HOUR_UTC} * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus(AUTOMATION.value),
    description="Expire landing events, dead letters and daily indices past their retention.")

SCHEDULES = [daily_close_schedule, retention_schedule]
