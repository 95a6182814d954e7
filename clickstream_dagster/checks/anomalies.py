"""The traffic warning: a day with anomalous windows shows as a warning in the UI and is alerted
through the webhook. It never blocks: unusual traffic is news about the site, not bad data, so the
anomalies index still loads and shows it."""

import dagster as dg
from pyspark.sql import functions as F

from spark.analytics.daily_tables import rows_per_day
from spark.delta_lake import read_days

from ..alerts import post_alert
from ..assets.analytics import traffic_anomalies
from ..partitions import run_partition_keys
from ..resources import LakeResource, SparkResource

SHOWN = 20  # the strongest anomalies named in the metadata and the alert
DETAIL = ["window_start", "dimension", "segment", "direction", "sessions", "baseline", "score"]


@dg.asset_check(asset=traffic_anomalies, name="traffic_has_no_anomalies", blocking=False,
                description="No 5-minute window of the day, overall or in any country, is a spike "
                            "or a drop against the trailing days; anomalies are alerted.")
def traffic_has_no_anomalies(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                             spark: SparkResource) -> dg.AssetCheckResult:
    days = run_partition_keys(context)
    found = read_days(spark.get_session(), lake.analytics("traffic_anomalies"), days).where("is_anomaly")
    per_day = rows_per_day(found)
    strongest = [{**row.asDict(), "window_start": row["window_start"].isoformat()}
                 for row in found.orderBy(F.abs("score").desc()).select(*DETAIL).limit(SHOWN).collect()]
    total = sum(per_day.values())
    alerted = False
    if total:
        summary = ", ".join(f"{a['direction']} in {a['segment']} at {a['window_start']} "
                            f"({a['sessions']} sessions, baseline {a['baseline']})"
                            for a in strongest[:3])
        context.log.warning(f"ALERT: {total} anomalous traffic window(s) on {', '.join(days)}: {summary}")
        alerted = post_alert({"kind": "traffic_anomaly", "asset": traffic_anomalies.key.to_user_string(),
                              "run_id": context.run.run_id, "anomalies": total,
                              "anomalies_per_day": per_day, "strongest": strongest})
    return dg.AssetCheckResult(passed=not total, severity=dg.AssetCheckSeverity.WARN, metadata={
        "anomalies": total,
        "anomalies_per_day": dg.MetadataValue.json({day: per_day.get(day, 0) for day in days}),
        "strongest": dg.MetadataValue.json(strongest),
        "alert_sent": alerted,
    })


ANOMALY_CHECKS = [traffic_has_no_anomalies]
