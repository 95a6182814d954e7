"""The source end of the graph: the Kafka topic, and the streaming ingest into the landing lake."""

import time
from datetime import UTC, datetime

import dagster as dg

from spark.ingest.config import AVAILABLE_NOW, IngestConfig
from spark.ingest.stream import IngestJob

from ..partitions import FIRST_DAY, FUTURE_DAYS, LIVE_FRESHNESS
from ..resources import KafkaResource, LakeResource, SparkResource

clickstream_topic = dg.AssetSpec(
    "clickstream_topic",
    description="Raw web events in the clickstream Kafka topic, keyed by user_id (external).",
    group_name="ingest",
    kinds={"kafka"},
)


class IngestRunConfig(dg.Config):
    """Per-run ingest settings; the defaults are the ingest job's own (spark/ingest/config.py)."""

    max_offsets_per_trigger: int = IngestConfig.max_offsets_per_trigger
    dedup_watermark: str = IngestConfig.dedup_watermark


@dg.asset(deps=[clickstream_topic], group_name="ingest", kinds={"spark", "delta"},
          freshness_policy=LIVE_FRESHNESS)
def clickstream_landing(context: dg.AssetExecutionContext, config: IngestRunConfig,
                        kafka: KafkaResource, lake: LakeResource, spark: SparkResource
                        ) -> dg.MaterializeResult:
    """Everything new on the topic, validated and deduplicated into the landing lake (available-now)."""
    job_config = IngestConfig(
        bootstrap_servers=kafka.bootstrap_servers, lake_root=lake.root, topic=kafka.topic,
        dlq_topic=kafka.dlq_topic, mode=AVAILABLE_NOW,
        max_offsets_per_trigger=config.max_offsets_per_trigger,
        dedup_watermark=config.dedup_watermark, first_day=FIRST_DAY, future_days=FUTURE_DAYS,
    )
    reported_through = _reported_through(context)
    started = time.monotonic()
    session = spark.get_session()
    ingest = IngestJob(session, job_config)
    ingest.wait()
    seconds = time.monotonic() - started
    # Batches in the lake's log that no materialization reported: a run that committed some and
    # then failed or was killed reports nothing, but its rows are in the lake. Changed days come
    # from the lake itself, so none is ever left without its recompute.
    batches, recovered = ingest.batches_since(reported_through)
    rows_per_day: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for batch in batches:
        for day, rows in batch.rows_per_event_date.items():
            rows_per_day[day] = rows_per_day.get(day, 0) + rows
        for reason, rows in batch.dead_letters_per_reason.items():
            reasons[reason] = reasons.get(reason, 0) + rows
    consumed = sum(b.input_rows for b in batches)
    recovered_days = sorted({day for batch in recovered for day, rows in
                             batch.rows_per_event_date.items() if rows})
    changed = sorted({*recovered_days, *(day for day, rows in rows_per_day.items() if rows)})
    context.log.info(f"{consumed:,} records in {len(batches)} micro-batches; changed days: {changed}")
    if recovered:
        context.log.warning(f"{len(recovered)} micro-batches committed by runs that never reported "
                            f"them (a failed or killed ingest): their days {recovered_days} are "
                            "recomputed too")
    return dg.MaterializeResult(metadata={
        "records_consumed": consumed,
        "rows_landed": sum(rows_per_day.values()),
        "dead_letters": sum(reasons.values()),
        "duplicates_removed": sum(b.duplicates_removed for b in batches),
        "dead_letters_per_reason": dg.MetadataValue.json(reasons),
        "rows_per_event_date": dg.MetadataValue.json(rows_per_day),
        # Read by the partition sensor: exactly these daily partitions get recomputed.
        "changed_partitions": dg.MetadataValue.json(changed),
        "recovered_batches": len(recovered),
        "recovered_partitions": dg.MetadataValue.json(recovered_days),
        # Where the next run starts looking for batches no run reported.
        "reported_through": max([b.started_at for b in [*batches, *recovered]],
                                default=reported_through or FIRST_DAY),
        "start_offsets": dg.MetadataValue.json(batches[0].start_offsets if batches else {}),
        "end_offsets": dg.MetadataValue.json(batches[-1].end_offsets if batches else {}),
        "micro_batches": len(batches),
        "events_per_s": round(consumed / seconds) if seconds else 0,
        "landing_path": dg.MetadataValue.path(lake.landing),
    })


def _reported_through(context: dg.AssetExecutionContext) -> str | None:
    """The start time of the newest micro-batch an earlier materialization reported; None before
    the first materialization. One from before this field existed counts from now on."""
    event = context.instance.get_latest_materialization_event(clickstream_landing.key)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    if "reported_through" not in metadata:
        return datetime.now(UTC).isoformat(timespec="milliseconds")
    return metadata["reported_through"].value

