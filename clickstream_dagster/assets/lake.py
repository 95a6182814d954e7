"""The daily raw table: the landing lake compacted per day, deduplicated over the whole day."""

import dagster as dg

from spark.analytics import daily_tables, transform

from ..partitions import DAILY_POOL, FINAL_FRESHNESS, SPARK_BACKFILL, daily_partitions
from ..resources import LakeResource, SparkResource
from .ingest import clickstream_landing
from .metadata import OWNERS, asset_tags, code_version, days_result


@dg.asset(partitions_def=daily_partitions, backfill_policy=SPARK_BACKFILL, deps=[clickstream_landing],
          group_name="lake", kinds={"spark", "delta"}, freshness_policy=FINAL_FRESHNESS,
          pool=DAILY_POOL, owners=OWNERS, tags=asset_tags("lake"),
          code_version=code_version(daily_tables.compact_days, transform.deduplicate_day,
                                    transform.flag_fast_users))
def raw_clickstream(context: dg.AssetExecutionContext, lake: LakeResource,
                    spark: SparkResource) -> dg.MaterializeResult:
    """Valid events of the day, deduplicated over the whole day, bots flagged, in a compacted Delta table."""
    written = daily_tables.compact_days(spark.get_session(), lake.landing, lake.raw,
                                        context.partition_keys, lake.bot_events_per_second)
    metadata = days_result(written, lake.raw).metadata
    return dg.MaterializeResult(metadata={
        **metadata,
        # Events whose IP address looks up to another country than the one they declare.
        "ip_country_mismatches": dg.MetadataValue.json(written["ip_country_mismatches"])})
