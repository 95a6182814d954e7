"""The close schedule: a finished day becomes final once its lateness window has passed; and the
retention schedule, which expires old data once a day."""

from datetime import timedelta

import dagster as dg

from .jobs import daily_job
from .retention import retention_job
from .sensors import AUTOMATION
from .settings import Settings

# A day is closed once late events can no longer be expected: two hours after midnight UTC by
# default (the generator's and trackers' lateness stays well inside that), the finished day is
# recomputed and tagged as final. Stragglers after that still reopen it through the partition
# sensor, so nothing is lost.
CLOSE_HOUR_UTC = Settings.from_env().day_close_hour_utc


@dg.schedule(job=daily_job, cron_schedule=f"0 {CLOSE_HOUR_UTC} * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus(AUTOMATION.value))
def daily_close_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Recompute the day that just ended, once its lateness window has passed, as final."""
    day = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    return dg.RunRequest(run_key=f"close:{day}", partition_key=day, tags={"clickstream/day": "final"})


# Half an hour after the close, so the day's final run usually goes first in the daily lane.
retention_schedule = dg.ScheduleDefinition(
    name="retention_schedule", job=retention_job, cron_schedule=f"30 {CLOSE_HOUR_UTC} * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus(AUTOMATION.value),
    description="Expire landing events, dead letters and daily indices past their retention.")

SCHEDULES = [daily_close_schedule, retention_schedule]
