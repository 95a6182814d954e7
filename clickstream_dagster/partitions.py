"""The one daily partitioning of the pipeline, in UTC; every asset, sensor and test imports it."""

import dagster as dg

# First day the simulator and lake hold data for by default; backfills may go back to it.
PIPELINE_START_DATE = "2026-01-01"

daily_partitions = dg.DailyPartitionsDefinition(
    start_date=PIPELINE_START_DATE, timezone="UTC", end_offset=1
)
