"""Elasticsearch indices for search and dashboards, one asset per served table, one index per day."""

import dagster as dg

from spark.delta_lake import read_days

from ..partitions import daily_partitions
from ..resources import ElasticsearchResource, LakeResource, SparkResource
from ..serving.indices import SERVED, IndexingError, IndexSpec, load_day
from .analytics import ANALYTICS_ASSETS
from .lake import SPARK_BACKFILL

_UPSTREAM = {asset.key.to_user_string(): asset for asset in ANALYTICS_ASSETS}


def index_asset(spec: IndexSpec) -> dg.AssetsDefinition:
    """A daily asset that loads one analytics table's days into Elasticsearch."""

    @dg.asset(name=spec.name.replace("-", "_") + "_index",
              description=f"{spec.table} in Elasticsearch: index {spec.name}-YYYY.MM.DD per day, "
                          f"alias {spec.alias}.",
              partitions_def=daily_partitions, backfill_policy=SPARK_BACKFILL,
              deps=[_UPSTREAM[spec.table]], group_name="serving", kinds={"elasticsearch"})
    def _asset(context: dg.AssetExecutionContext, elasticsearch: ElasticsearchResource,
               lake: LakeResource, spark: SparkResource) -> dg.MaterializeResult:
        client = elasticsearch.client()
        served = spec.with_prefix(elasticsearch.index_prefix)
        table = lake.analytics(spec.table)
        frame = read_days(spark.get_session(), table, context.partition_keys)
        reports = []
        for day in context.partition_keys:
            rows = frame.where(f"event_date = DATE'{day}'").toArrow()
            try:
                report = load_day(client, served, day, rows, context.run.run_id,
                                  replicas=elasticsearch.number_of_replicas)
            except IndexingError as exc:
                raise dg.Failure(description=str(exc)) from exc
            context.log.info(f"{report.index}: {report.documents:,} documents "
                             f"({report.docs_per_s:,}/s), {report.stale_removed} stale removed")
            reports.append(report)
        seconds = sum(r.seconds for r in reports)
        documents = sum(r.documents for r in reports)
        return dg.MaterializeResult(metadata={
            "documents": documents,
            "docs_per_s": round(documents / seconds) if seconds else 0,
            "indices": dg.MetadataValue.json({r.index: r.documents for r in reports}),
            "stale_removed": sum(r.stale_removed for r in reports),
            "alias": served.alias,
        })

    return _asset


SERVING_ASSETS = [index_asset(spec) for spec in SERVED]
