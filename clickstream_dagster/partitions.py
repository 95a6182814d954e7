"""The one daily partitioning of the pipeline, in UTC; every asset, sensor and test imports it."""

import dagster as dg

from .settings import Settings

# First day with partitions (CLICKSTREAM_FIRST_DAY); backfills may go back to it, and the ingest
# dead-letters events dated before it, so no day outside the partitions ever reaches a run.
FIRST_DAY = Settings.from_env().first_day
# Partitions reach one day past today (end_offset=1): a client clock slightly ahead of UTC
# midnight still lands in a real partition, and the ingest dead-letters anything later.
FUTURE_DAYS = 1

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=FIRST_DAY, timezone="UTC", end_offset=FUTURE_DAYS
)
