"""Daily analytics tables computed from raw_clickstream, one asset per table."""

from collections.abc import Callable

import dagster as dg
from pyspark.sql import DataFrame

from config.settings import Settings
from spark.analytics import anomalies, transform
from spark.analytics.daily_tables import build_days, rows_per_day
from spark.delta_lake import read_days

from ..partitions import DAILY_POOL, FINAL_FRESHNESS, SPARK_BACKFILL, daily_partitions
from ..resources import LakeResource, SparkResource
from .lake import raw_clickstream
from .metadata import OWNERS, asset_tags, code_version, column_lineage, days_result


def analytics_asset(transformation: Callable[[DataFrame], DataFrame],
                    every_row: bool = False) -> dg.AssetsDefinition:
    """A daily asset that applies one pure transformation to raw_clickstream's days: the people's
    rows (CLICKSTREAM_INCLUDE_BOTS), or with `every_row` the bots' too."""
    name = transformation.__name__
    lineage = column_lineage(transform.COLUMN_SOURCES[name], raw_clickstream.key)

    @dg.asset(name=name, description=transformation.__doc__.splitlines()[0],
              partitions_def=daily_partitions, backfill_policy=SPARK_BACKFILL, deps=[raw_clickstream],
              group_name="analytics", kinds={"spark", "delta"},
              freshness_policy=FINAL_FRESHNESS, pool=DAILY_POOL, owners=OWNERS,
              tags=asset_tags("analytics"),
              # The whole module: a table's transformation calls its helpers there.
              code_version=code_version(transform),
              metadata={"dagster/column_lineage": lineage})
    def _asset(context: dg.AssetExecutionContext, lake: LakeResource,
               spark: SparkResource) -> dg.MaterializeResult:
        written = build_days(spark.get_session(), lake.raw, lake.analytics(name),
                             context.partition_keys, transformation,
                             include_bots=every_row or lake.include_bots)
        return days_result(written, lake.analytics(name), lineage)

    return _asset


url_country_daily = analytics_asset(transform.url_country_daily)
url_popularity_5m = analytics_asset(transform.url_popularity_5m)
device_usage_5m = analytics_asset(transform.device_usage_5m)
active_users_5m = analytics_asset(transform.active_users_5m)
user_sessions = analytics_asset(transform.user_sessions)
conversion_funnel = analytics_asset(transform.conversion_funnel)
bot_traffic = analytics_asset(transform.bot_traffic, every_row=True)

SETTINGS = Settings.from_env()


class AnomalyConfig(dg.Config):
    """How unusual a window must be to count as an anomaly; the defaults come from
    CLICKSTREAM_ANOMALY_THRESHOLD and CLICKSTREAM_ANOMALY_MIN_SESSIONS."""

    threshold: float = SETTINGS.anomaly_threshold  # robust score, in spreads from the baseline
    min_sessions: int = SETTINGS.anomaly_min_sessions  # and a change of at least this many sessions


ANOMALY_LINEAGE = column_lineage(anomalies.COLUMN_SOURCES, raw_clickstream.key)


# A day is scored against the raw rows of its trailing days too, but depends on its own day only:
# mapped to the trailing days, a backfill of raw days also asked for the 7 days after them (empty
# future days among them) in a run of their own, which the suite's has_rows then failed.
@dg.asset(partitions_def=daily_partitions, backfill_policy=SPARK_BACKFILL, deps=[raw_clickstream],
          group_name="analytics", kinds={"spark", "delta"}, freshness_policy=FINAL_FRESHNESS,
          pool=DAILY_POOL, owners=OWNERS, tags=asset_tags("analytics"),
          code_version=code_version(anomalies),
          metadata={"dagster/column_lineage": ANOMALY_LINEAGE})
def traffic_anomalies(context: dg.AssetExecutionContext, config: AnomalyConfig, lake: LakeResource,
                      spark: SparkResource) -> dg.MaterializeResult:
    """Sessions per 5-minute window, overall and per country, scored against the trailing days."""
    days = context.partition_keys

    cached: list[DataFrame] = []

    def scored(rows: DataFrame) -> DataFrame:
        # The scoring reads the window counts several times: they are small, so they are
        # computed once, before it.
        counts = anomalies.window_sessions(rows).cache()
        cached.append(counts)
        counts.count()
        return anomalies.score_windows(counts, days, config.threshold, config.min_sessions)

    try:
        written = build_days(spark.get_session(), lake.raw, lake.analytics("traffic_anomalies"),
                             days, scored, lake.include_bots, reads=anomalies.history_days(days))
    finally:
        for counts in cached:
            counts.unpersist()
    table = lake.analytics("traffic_anomalies")
    found = rows_per_day(read_days(spark.get_session(), table, days).where("is_anomaly"))
    metadata = days_result(written, table, ANOMALY_LINEAGE).metadata
    return dg.MaterializeResult(metadata={
        **metadata, "anomalies": sum(found.values()),
        "anomalies_per_day": dg.MetadataValue.json({day: found.get(day, 0) for day in days}),
        "threshold": config.threshold, "min_sessions": config.min_sessions})


ANALYTICS_ASSETS = [url_country_daily, url_popularity_5m, device_usage_5m, active_users_5m,
                    user_sessions, conversion_funnel, bot_traffic, traffic_anomalies]
