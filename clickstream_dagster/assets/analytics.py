"""Daily analytics tables computed from raw_clickstream, one asset per table."""

from collections.abc import Callable

import dagster as dg
from pyspark.sql import DataFrame

from spark.analytics import transform
from spark.analytics.jobs import build_days

from ..partitions import FINAL_FRESHNESS, daily_partitions
from ..resources import LakeResource, SparkResource
from .lake import SPARK_BACKFILL, days_result, raw_clickstream


def analytics_asset(transformation: Callable[[DataFrame], DataFrame]) -> dg.AssetsDefinition:
    """A daily asset that applies one pure transformation to raw_clickstream's days."""
    name = transformation.__name__

    @dg.asset(name=name, description=transformation.__doc__.splitlines()[0],
              partitions_def=daily_partitions, backfill_policy=SPARK_BACKFILL, deps=[raw_clickstream],
              group_name="analytics", kinds={"spark", "delta"},
              freshness_policy=FINAL_FRESHNESS)
    def _asset(context: dg.AssetExecutionContext, lake: LakeResource,
               spark: SparkResource) -> dg.MaterializeResult:
        written = build_days(spark.get_session(), lake.raw, lake.analytics(name),
                             context.partition_keys, transformation)
        return days_result(written, lake.analytics(name))

    return _asset


url_country_daily = analytics_asset(transform.url_country_daily)
url_popularity_5m = analytics_asset(transform.url_popularity_5m)
device_usage_5m = analytics_asset(transform.device_usage_5m)
active_users_5m = analytics_asset(transform.active_users_5m)
user_sessions = analytics_asset(transform.user_sessions)

ANALYTICS_ASSETS = [url_country_daily, url_popularity_5m, device_usage_5m, active_users_5m,
                    user_sessions]
