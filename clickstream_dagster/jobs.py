"""The two jobs, each in its own lane of the run queue: the ingest with its live refresh, and the
daily recompute of whole days."""

import dagster as dg

from .assets.ingest import INGEST_JOB, clickstream_landing
from .assets.live import live_indices

# Each job runs in its own lane of the run queue (see stack/templates/dagster.yaml): an ingest
# never waits for a daily run, and neither ever runs twice at once.
ingest_job = dg.define_asset_job(
    INGEST_JOB, selection=[clickstream_landing, live_indices], tags={"clickstream/lane": "ingest"},
    description="Consume everything new on the topic into the landing lake, and refresh the open "
                "days' live documents from the new rows.")
daily_job = dg.define_asset_job(
    "daily_job", selection=dg.AssetSelection.groups("lake", "analytics", "serving"),
    tags={"clickstream/lane": "daily"},
    description="Compact, aggregate, validate and index the given days.")

JOBS = [ingest_job, daily_job]
