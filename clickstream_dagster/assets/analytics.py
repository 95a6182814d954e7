"""Daily analytics tables computed from raw_clickstream, one asset per table."""

from collections.abc import Callable

import dagster as dg
from pyspark.sql import DataFrame

from spark.analytics import transform
from spark.analytics.jobs import build_days

from ..partitions import FINAL_FRESHNESS, SPARK_BACKFILL, daily_partitions
from ..resources import LakeResource, SparkResource
from .lake import raw_clickstream
from .metadata import OWNERS, asset_tags, code_version, column_lineage, days_result


def analytics_asset(transformation: Callable[[DataFrame], DataFrame]) -> dg.AssetsDefinition:
    """A daily asset that applies one pure transformation to raw_clickstream's days."""
    name = transformation.__name__
    lineage = column_lineage(transform.COLUMN_SOURCES[name], raw_clickstream.key)

    @dg.asset(name=name, description=transformation.__doc__.splitlines()[0],
              partitions_def=daily_partitions, backfill_policy=SPARK_BACKFILL, deps=[raw_clickstream],
              group_name="analytics", kinds={"spark", "delta"},
              freshness_policy=FINAL_FRESHNESS, owners=OWNERS, tags=asset_tags("analytics"),
              # The whole module: a table's transformation calls its helpers there.
              code_version=code_version(transform),
              metadata={"dagster/column_lineage": lineage})
    def _asset(context: dg.AssetExecutionContext, lake: LakeResource,
               spark: SparkResource) -> dg.MaterializeResult:
        written = build_days(spark.get_session(), lake.raw, lake.analytics(name),
                             context.partition_keys, transformation, lake.include_bots)
        return days_result(written, lake.analytics(name), lineage)

    return _asset


url_country_daily = analytics_asset(transform.url_country_daily)
url_popularity_5m = analytics_asset(transform.url_popularity_5m)
device_usage_5m = analytics_asset(transform.device_usage_5m)
active_users_5m = analytics_asset(transform.active_users_5m)
user_sessions = analytics_asset(transform.user_sessions)

ANALYTICS_ASSETS = [url_country_daily, url_popularity_5m, device_usage_5m, active_users_5m,
                    user_sessions]
