"""Elasticsearch indices for search and dashboards, one asset per served table, one index per day."""

import dagster as dg

from spark.delta_lake import read_days

from ..partitions import DAILY_POOL, FINAL_FRESHNESS, SPARK_BACKFILL, daily_partitions
from ..resources import ElasticsearchResource, LakeResource, SparkResource
from ..serving import indices
from ..serving.indices import SERVED, IndexingError, IndexSpec, load_day
from .analytics import ANALYTICS_ASSETS
from .metadata import OWNERS, asset_tags, code_version, table_schema

_UPSTREAM = {asset.key.to_user_string(): asset for asset in ANALYTICS_ASSETS}


# Elasticsearch away (a restart, a full queue answering 429 beyond the bulk helper's own retries):
# the step is tried again after about 15, 30 and 60 s. Each attempt loads a new index, so the day
# keeps serving its last complete load meanwhile. Documents Elasticsearch refuses, and an empty
# day, fail at once: another attempt would fail the same way.
INDEX_RETRY = dg.RetryPolicy(max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL,
                             jitter=dg.Jitter.PLUS_MINUS)


class IndexLoadConfig(dg.Config):
    # A day whose table has no rows never replaces served documents with nothing, unless this
    # says the day really is empty now.
    allow_empty_days: bool = False


def index_asset(spec: IndexSpec) -> dg.AssetsDefinition:
    """A daily asset that loads one analytics table's days into Elasticsearch, each into a new
    index that its aliases move to once its count is verified."""

    @dg.asset(name=spec.name.replace("-", "_") + "_index",
              description=f"{spec.table} in Elasticsearch: alias {spec.name}-YYYY.MM.DD per day "
                          f"and {spec.alias} for all days, swapped to a new index per load.",
              partitions_def=daily_partitions, backfill_policy=SPARK_BACKFILL,
              deps=[_UPSTREAM[spec.table]], group_name="serving", kinds={"elasticsearch"},
              freshness_policy=FINAL_FRESHNESS, retry_policy=INDEX_RETRY, pool=DAILY_POOL,
              owners=OWNERS, tags=asset_tags("serving"), code_version=code_version(indices),
              # The documents' fields are the index mapping's, the one place they are written.
              metadata={"dagster/column_schema": table_schema(
                  {name: mapping["type"] for name, mapping in spec.properties.items()})})
    def _asset(context: dg.AssetExecutionContext, config: IndexLoadConfig,
               elasticsearch: ElasticsearchResource, lake: LakeResource, spark: SparkResource
               ) -> dg.MaterializeResult:
        client = elasticsearch.client()
        served = spec.with_prefix(elasticsearch.index_prefix)
        table = lake.analytics(spec.table)
        frame = read_days(spark.get_session(), table, context.partition_keys)
        reports = []
        for day in context.partition_keys:
            rows = frame.where(f"event_date = DATE'{day}'").toArrow()
            try:
                report = load_day(client, served, day, rows, context.run.run_id,
                                  replicas=elasticsearch.number_of_replicas,
                                  allow_empty=config.allow_empty_days)
            except IndexingError as exc:
                raise dg.Failure(description=str(exc), allow_retries=exc.retryable) from exc
            context.log.info(f"{served.index_for(day)} -> {report.index}: {report.documents:,} "
                             f"documents ({report.docs_per_s:,}/s), replacing {report.replaced}")
            if not report.documents:
                context.log.warning(f"{served.index_for(day)} now serves an empty day: "
                                    f"{spec.table} has no rows for {day}")
            reports.append(report)
        seconds = sum(r.seconds for r in reports)
        documents = sum(r.documents for r in reports)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": documents,
            "documents": documents,
            "docs_per_s": round(documents / seconds) if seconds else 0,
            "indices": dg.MetadataValue.json({r.index: r.documents for r in reports}),
            "replaced_indices": dg.MetadataValue.json([i for r in reports for i in r.replaced]),
            # Days that now serve no documents: only ever with allow_empty_days.
            "empty_days": dg.MetadataValue.json(
                [day for day, r in zip(context.partition_keys, reports, strict=True) if not r.documents]),
            "alias": served.alias,
        })

    return _asset


SERVING_ASSETS = [index_asset(spec) for spec in SERVED]
