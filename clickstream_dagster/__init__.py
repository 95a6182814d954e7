"""clickstream_dagster: real-time clickstream analytics with Dagster as the control plane."""
