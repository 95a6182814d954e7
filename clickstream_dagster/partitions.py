"""The one daily partitioning of the pipeline, in UTC; every asset, sensor and test imports it."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

from config.settings import Settings

# First day with partitions (CLICKSTREAM_FIRST_DAY); backfills may go back to it, and the ingest
# dead-letters events dated before it, so no day outside the partitions ever reaches a run.
FIRST_DAY = Settings.from_env().first_day
# Partitions reach one day past today (end_offset=1): a client clock slightly ahead of UTC
# midnight still lands in a real partition, and the ingest dead-letters anything later.
FUTURE_DAYS = 1

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=FIRST_DAY, timezone="UTC", end_offset=FUTURE_DAYS
)
# A backfill over many days runs as one Spark job, not one run per day.
SPARK_BACKFILL = dg.BackfillPolicy.single_run()
# The daily lane: every asset or op that writes a day's final tables or indices is in this pool,
# so the close schedule's runs, the partition sensor's, retention and a backfill launched from the
# UI (a run of the implicit asset job) all wait for one another. The instance template limits it
# to one run at a time (run granularity, stack/templates/dagster.yaml).
DAILY_POOL = "clickstream_daily"

# What fresh means, shown on every asset in the UI. The live path follows the traffic: an ingest
# and refresh every few seconds while events arrive, so minutes without one mean a stalled sensor,
# a failing run or a silent site. A closed day's final assets are due within the hour after the
# close schedule has started their run.
LIVE_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=30),
                                                warn_window=timedelta(minutes=5))
FINAL_FRESHNESS = dg.FreshnessPolicy.cron(
    deadline_cron=f"0 {(Settings.from_env().day_close_hour_utc + 1) % 24} * * *",
    lower_bound_delta=timedelta(hours=1))


def day_is_closed(day: str, now: datetime | None = None) -> bool:
    """A day is closed once its lateness window has passed (CLICKSTREAM_DAY_CLOSE_HOUR_UTC after the
    following midnight): only then is its whole volume in, and only then may it be judged whole.
    Until then the live path serves it; after, the checked daily recompute does."""
    closes = (datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
              + timedelta(days=1, hours=Settings.from_env().day_close_hour_utc))
    return (now or datetime.now(UTC)) >= closes


def open_days(now: datetime | None = None) -> list[str]:
    """The partitions still open: today, yesterday until it closes, and the future day."""
    today = (now or datetime.now(UTC)).date()
    days = [(today + timedelta(days=offset)).isoformat() for offset in range(-1, FUTURE_DAYS + 1)]
    return [day for day in days if day >= FIRST_DAY and not day_is_closed(day, now)]


def run_partition_keys(context) -> list[str]:
    """The daily partitions this run materializes: one key, or a backfill's range."""
    tags = context.run.tags
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    if start and end:
        return daily_partitions.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))
    raise dg.Failure("this check runs on daily partitions; the run names none")
