"""The daily raw table: the landing lake compacted per day, deduplicated over the whole day."""

import dagster as dg

from spark.analytics.jobs import compact_days

from ..partitions import FINAL_FRESHNESS, daily_partitions
from ..resources import LakeResource, SparkResource
from .ingest import clickstream_landing

# A backfill over many days runs as one Spark job, not one JVM per day.
SPARK_BACKFILL = dg.BackfillPolicy.single_run()


def days_result(written: dict, path: str) -> dg.MaterializeResult:
    """Metadata shared by every daily lake asset: rows per day, files, and the Delta version that
    holds them (time travel: `versionAsOf` reads exactly what this materialization wrote)."""
    rows_per_day = written["rows_per_day"]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": sum(rows_per_day.values()),
        "rows_per_day": dg.MetadataValue.json(rows_per_day),
        # A day that lost all its rows is emptied on purpose; it is named, never silent.
        "empty_days": dg.MetadataValue.json([d for d, r in rows_per_day.items() if not r]),
        "files": written["files"],
        "avg_file_mib": round(written["bytes"] / max(written["files"], 1) / 1024**2, 2),
        "delta_version": written["version"],
        "path": dg.MetadataValue.path(path),
    })


@dg.asset(partitions_def=daily_partitions, backfill_policy=SPARK_BACKFILL, deps=[clickstream_landing],
          group_name="lake", kinds={"spark", "delta"}, freshness_policy=FINAL_FRESHNESS)
def raw_clickstream(context: dg.AssetExecutionContext, lake: LakeResource,
                    spark: SparkResource) -> dg.MaterializeResult:
    """Valid events of the day, deduplicated by event_id over the whole day, in a compacted Delta table."""
    written = compact_days(spark.get_session(), lake.landing, lake.raw, context.partition_keys)
    return days_result(written, lake.raw)
