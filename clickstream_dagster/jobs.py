"""The two jobs, each in its own lane of the run queue: the ingest with its live refresh, and the
daily recompute of whole days. A lane is a pool of the assets' (INGEST_POOL, DAILY_POOL), so it
holds every run that writes them, whichever job or backfill launched it."""

import dagster as dg

from .assets.ingest import INGEST_JOB, clickstream_landing
from .assets.live import live_indices

# An ingest never waits for a daily run, and neither ever runs twice at once
# (stack/templates/dagster.yaml).
ingest_job = dg.define_asset_job(
    INGEST_JOB, selection=[clickstream_landing, live_indices],
    description="Consume everything new on the topic into the landing lake, and refresh the open "
                "days' live documents from the new rows.")
daily_job = dg.define_asset_job(
    "daily_job", selection=dg.AssetSelection.groups("lake", "analytics", "serving"),
    description="Compact, aggregate, validate and index the given days.")

JOBS = [ingest_job, daily_job]
