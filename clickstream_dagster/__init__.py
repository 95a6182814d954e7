"""clickstream_dagster: real-time clickstream analytics with Dagster as the control plane."""

import warnings

# Single-run backfills are a deliberate choice (one Spark job per backfill, see assets/lake.py);
# the parameter's beta notice would otherwise print once per daily asset.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`")
