"""The daily raw table: the landing lake compacted per day, deduplicated over the whole day."""

import dagster as dg

from spark.analytics.jobs import compact_days

from ..partitions import daily_partitions
from ..resources import LakeResource, SparkResource
from .ingest import clickstream_landing

# A backfill over many days runs as one Spark job, not one JVM per day.
SPARK_BACKFILL = dg.BackfillPolicy.single_run()


def days_result(written: dict[str, dict], path: str) -> dg.MaterializeResult:
    """Metadata shared by every daily lake asset: rows, files and bytes per day."""
    rows = sum(info["rows"] for info in written.values())
    files = sum(info["files"] for info in written.values())
    size = sum(info["bytes"] for info in written.values())
    return dg.MaterializeResult(metadata={
        "dagster/row_count": rows,
        "rows_per_day": dg.MetadataValue.json({d: i["rows"] for d, i in written.items()}),
        "files": files,
        "avg_file_mib": round(size / max(files, 1) / 1024**2, 2),
        "path": dg.MetadataValue.path(path),
    })


@dg.asset(partitions_def=daily_partitions, backfill_policy=SPARK_BACKFILL, deps=[clickstream_landing],
          group_name="lake", kinds={"spark", "parquet"})
def raw_clickstream(context: dg.AssetExecutionContext, lake: LakeResource,
                    spark: SparkResource) -> dg.MaterializeResult:
    """Valid events of the day, deduplicated by event_id over the whole day, in compacted Parquet."""
    written = compact_days(spark.get_session(), lake.landing, lake.raw, context.partition_keys)
    return days_result(written, lake.raw)
