"""The live path: open days reach Elasticsearch after every ingest, with work proportional to the
new rows, not to the day (see live/refresh.py). Closed days belong to the daily assets."""

import dagster as dg

from spark.analytics import anomalies, live

from ..live import anomalies as live_anomalies
from ..live import documents as live_documents
from ..live import refresh as live_refresh
from ..live.refresh import LIVE_INDICES, LiveRefresh
from ..partitions import LIVE_FRESHNESS
from ..resources import ElasticsearchResource, LakeResource, SparkResource
from ..serving import indices
from .ingest import clickstream_landing
from .metadata import OWNERS, asset_tags, code_version


@dg.asset(key=LIVE_INDICES, deps=[clickstream_landing], group_name="live",
          kinds={"spark", "delta", "elasticsearch"}, freshness_policy=LIVE_FRESHNESS, owners=OWNERS,
          tags=asset_tags("live"),
          code_version=code_version(live, anomalies, indices, live_documents, live_anomalies,
                                    live_refresh))
def live_indices(context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkResource,
                 elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
    """Open days' url x country, 5-minute, session and scored traffic-window documents, merged
    with the new landing rows."""
    refresh = LiveRefresh(context.log, context.run.run_id, context.instance, spark.get_session(),
                          lake, elasticsearch)
    return dg.MaterializeResult(metadata=refresh())
