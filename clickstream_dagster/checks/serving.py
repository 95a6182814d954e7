"""The served count, as a check the UI shows: each index holds one document per row of its table.

The load verifies its count before it swaps a day in, and fails otherwise; this check reads the
served day back through its alias, after the swap, so the UI shows the count readers get."""

import dagster as dg

from spark.analytics.daily_tables import rows_per_day
from spark.delta_lake import read_days

from ..assets.serving import SERVING_ASSETS
from ..partitions import day_is_closed, run_partition_keys
from ..resources import ElasticsearchResource, LakeResource, SparkResource
from ..serving.indices import SERVED, IndexSpec, served_documents


def served_count_check(asset: dg.AssetsDefinition, spec: IndexSpec) -> dg.AssetChecksDefinition:
    """Documents served per day against the table's rows: equal on a closed day; on an open day the
    live path may have added documents since the load, so there it may only hold more."""

    @dg.asset_check(asset=asset, name="served_documents_match_table",
                    description=f"The day's alias serves one document per row of {spec.table}.")
    def _check(context: dg.AssetCheckExecutionContext, elasticsearch: ElasticsearchResource,
               lake: LakeResource, spark: SparkResource) -> dg.AssetCheckResult:
        days = run_partition_keys(context)
        served = spec.with_prefix(elasticsearch.index_prefix)
        rows = rows_per_day(read_days(spark.get_session(), lake.analytics(spec.table), days))
        documents = served_documents(elasticsearch.client(), served, days)
        wrong = [day for day in days if not _count_holds(day, documents[day], rows.get(day, 0))]
        return dg.AssetCheckResult(passed=not wrong, severity=dg.AssetCheckSeverity.ERROR, metadata={
            "table_rows": dg.MetadataValue.json({day: rows.get(day, 0) for day in days}),
            "served_documents": dg.MetadataValue.json(documents),
            "days_that_differ": dg.MetadataValue.json(wrong),
            "open_days": dg.MetadataValue.json([day for day in days if not day_is_closed(day)]),
        })

    return _check


def _count_holds(day: str, documents: int, rows: int) -> bool:
    return documents == rows if day_is_closed(day) else documents >= rows


SERVING_CHECKS = [served_count_check(asset, spec) for asset, spec in zip(SERVING_ASSETS, SERVED,
                                                                          strict=True)]
