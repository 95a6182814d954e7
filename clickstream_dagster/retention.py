"""Retention: the landing's events, the dead letters and the daily indices expire after a
documented number of days (CLICKSTREAM_*_RETENTION_DAYS; 0 keeps forever). A daily schedule runs
the job; it may also be launched by hand, and a repeated run finds nothing more to delete.

The raw table and the analytics tables are kept: they are what the indices are rebuilt from."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from pydantic import Field

from config.settings import Settings
from spark import retention

from .partitions import DAILY_POOL
from .resources import ElasticsearchResource, KafkaResource, LakeResource, SparkResource
from .serving.indices import SERVED, expire_days

DEFAULTS = Settings.from_env()


class RetentionConfig(dg.Config):
    """How many days each kind of data is kept, counted back from today (UTC); 0 keeps forever."""

    landing_days: int = Field(DEFAULTS.landing_retention_days, ge=0, description=(
        "Landing events dated earlier are deleted once the raw table holds their compacted day "
        "(CLICKSTREAM_LANDING_RETENTION_DAYS)."))
    dead_letter_days: int = Field(DEFAULTS.dead_letter_retention_days, ge=0, description=(
        "Bad rows ingested earlier are deleted, and the dead-letter topic keeps this long "
        "(CLICKSTREAM_DEAD_LETTER_RETENTION_DAYS)."))
    index_days: int = Field(DEFAULTS.index_retention_days, ge=0, description=(
        "Daily indices of earlier days are deleted (CLICKSTREAM_INDEX_RETENTION_DAYS)."))


def cutoff(days: int, today: date | None = None) -> date | None:
    """The first day kept; None when everything is kept."""
    return (today or datetime.now(UTC).date()) - timedelta(days=days) if days else None


# The deleting ops are in the daily lane: never beside a compaction, which reads the landing this
# deletes from, nor beside a load of the indices this drops.
@dg.op(tags={"layer": "retention"}, pool=DAILY_POOL)
def expire_lake(context: dg.OpExecutionContext, config: RetentionConfig, lake: LakeResource,
                spark: SparkResource) -> dg.Output[None]:
    """Delete expired landing events and bad rows, then vacuum the files no version needs."""
    session = spark.get_session()
    landing_before, bad_before = cutoff(config.landing_days), cutoff(config.dead_letter_days)
    landing = retention.expire_landing(session, lake.landing, lake.raw, landing_before) \
        if landing_before else 0
    bad_rows = retention.expire_partitions(session, lake.bad_rows, "ingest_date", bad_before) \
        if bad_before else 0
    for table in (lake.landing, lake.bad_rows):
        retention.vacuum(session, table)
    context.log.info(f"deleted {landing:,} landing rows before {landing_before or 'never'} and "
                     f"{bad_rows:,} bad rows before {bad_before or 'never'}")
    return dg.Output(None, metadata={
        "landing_rows_deleted": landing, "bad_rows_deleted": bad_rows,
        "landing_kept_from": str(landing_before or "all"),
        "bad_rows_kept_from": str(bad_before or "all")})


@dg.op(tags={"layer": "retention"}, pool=DAILY_POOL)
def expire_indices(context: dg.OpExecutionContext, config: RetentionConfig,
                   elasticsearch: ElasticsearchResource) -> dg.Output[None]:
    """Delete the daily indices of expired days, in every index family."""
    before = cutoff(config.index_days)
    client = elasticsearch.client()
    deleted = [index for spec in SERVED if before
               for index in expire_days(client, spec.with_prefix(elasticsearch.index_prefix), before)]
    context.log.info(f"deleted {len(deleted)} indices of days before {before or 'never'}")
    return dg.Output(None, metadata={"indices_deleted": dg.MetadataValue.json(deleted),
                                     "kept_from": str(before or "all")})


@dg.op(tags={"layer": "retention"})
def expire_dead_letter_topic(context: dg.OpExecutionContext, config: RetentionConfig,
                             kafka: KafkaResource) -> dg.Output[None]:
    """Keep the dead-letter topic's retention in line with the setting (Kafka deletes the rest)."""
    value = kafka.set_retention(kafka.dlq_topic, config.dead_letter_days)
    context.log.info(f"{kafka.dlq_topic}: retention.ms={value}")
    return dg.Output(None, metadata={"topic": kafka.dlq_topic, "retention_ms": int(value)})


@dg.job(description="Delete the landing events, dead letters and daily indices past their "
                    "retention (CLICKSTREAM_*_RETENTION_DAYS).")
def retention_job():
    expire_lake()
    expire_indices()
    expire_dead_letter_topic()
