"""The source end of the graph: the Kafka topic that web events arrive on."""

import dagster as dg

clickstream_topic = dg.AssetSpec(
    "clickstream_topic",
    description="Raw web events in the clickstream Kafka topic, keyed by user_id (external).",
    group_name="ingest",
    kinds={"kafka"},
)
