"""Blocking asset checks: each asset's GX suite runs on the partitions being materialized, and a
failed property stops the run before anything downstream (above all Elasticsearch) is touched."""

import statistics
from datetime import date, datetime, timedelta

import dagster as dg
from pyspark.sql import functions as F

from config.settings import Settings
from contract import event_schema, event_types
from spark.analytics.daily_tables import rows_per_day
from spark.analytics.transform import analytics_rows, is_person
from spark.delta_lake import read_days

from ..assets.analytics import ANALYTICS_ASSETS
from ..assets.lake import raw_clickstream
from ..partitions import daily_partitions, day_is_closed, run_partition_keys
from ..resources import LakeResource, SparkResource
from .gx_suites import check_names, validate

TRAILING_DAYS = 7
MIN_HISTORY_DAYS = 3


def volume_band() -> float:
    """Allowed relative deviation of a day's row count from the trailing median (default 0.5)."""
    return Settings.from_env().volume_band


def _raw_rows(spark, lake: LakeResource, days: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per day of the raw table: all of them, and those the analytics count (no bots,
    unless CLICKSTREAM_INCLUDE_BOTS)."""
    raw = read_days(spark, lake.raw, days)
    if analytics_rows(raw, lake.include_bots) is raw:  # every row counts
        every = rows_per_day(raw)
        return every, every
    counts = raw.groupBy("event_date").agg(F.count("*").alias("rows"),
                                           F.count_if(is_person()).alias("people")).collect()
    return ({str(r["event_date"]): r["rows"] for r in counts},
            {str(r["event_date"]): r["people"] for r in counts})


def _parameters(day: str, raw_rows: dict[str, int], history: dict[str, int],
                now: datetime | None = None, counted_rows: dict[str, int] | None = None) -> dict:
    start = datetime.combine(date.fromisoformat(day), datetime.min.time())
    trailing = [history[d] for d in sorted(history) if d < day][-TRAILING_DAYS:]
    closed = day_is_closed(day, now)
    if len(trailing) >= MIN_HISTORY_DAYS:
        median = statistics.median(trailing)
        # An open day holds only the traffic so far, so only the band's ceiling applies to it:
        # a spike above a whole day's volume is already wrong, a quiet morning is not.
        low = int(median * (1 - volume_band())) if closed else 0
        high = int(median * (1 + volume_band())) + 1
    else:  # not enough history yet: the band check passes and says so
        low, high = 0, 2**62
    device_enum = event_schema()["properties"]["device"]["properties"]["type"]["enum"]
    return {"day_start": start, "day_end_exclusive": start + timedelta(days=1),
            "event_types": event_types(), "device_types": device_enum,
            "raw_rows": raw_rows.get(day, 0), "volume_min": low, "volume_max": high,
            # What the analytics tables add up to: raw rows less the bots they leave out.
            "counted_rows": (raw_rows if counted_rows is None else counted_rows).get(day, 0),
            "trailing_days": len(trailing), "day_closed": closed}


def quality_checks(asset: dg.AssetsDefinition, suite: str, table_path) -> dg.AssetChecksDefinition:
    """One blocking check per property of `suite`, evaluated by a single GX validation per day."""
    names = check_names(suite)

    @dg.multi_asset_check(
        name=f"{suite}_quality",
        specs=[dg.AssetCheckSpec(name, asset=asset, blocking=True) for name in names],
    )
    def _checks(context: dg.AssetCheckExecutionContext, lake: LakeResource, spark: SparkResource):
        session = spark.get_session()
        days = run_partition_keys(context)
        first = (date.fromisoformat(days[0]) - timedelta(days=TRAILING_DAYS)).isoformat()
        history_days = daily_partitions.get_partition_keys_in_range(
            dg.PartitionKeyRange(max(first, daily_partitions.start.date().isoformat()), days[-1]))
        raw_rows, counted_rows = _raw_rows(session, lake, history_days)
        frame = read_days(session, table_path(lake), days)
        outcomes = {name: [] for name in names}
        for day in days:
            parameters = _parameters(day, raw_rows, raw_rows, counted_rows=counted_rows)
            results = validate(suite, frame.where(F.col("event_date") == F.lit(day).cast("date")),
                               parameters)
            for name in names:
                outcomes[name].append((day, results[name], parameters["trailing_days"]))
        for name in names:
            passed = all(outcome.passed for _, outcome, _ in outcomes[name])
            metadata = {day: dg.MetadataValue.json(outcome.observed) for day, outcome, _ in outcomes[name]}
            if name == "volume_is_within_the_trailing_band":
                metadata["trailing_days_of_history"] = min(t for _, _, t in outcomes[name])
                metadata["band"] = volume_band()
                metadata["open_days_judged_by_ceiling_only"] = dg.MetadataValue.json(
                    [day for day in days if not day_is_closed(day)])
            yield dg.AssetCheckResult(asset_key=asset.key, check_name=name, passed=passed,
                                      severity=dg.AssetCheckSeverity.ERROR, metadata=metadata)

    return _checks


def _analytics_table(name: str):
    return lambda lake: lake.analytics(name)


QUALITY_CHECKS = [
    quality_checks(raw_clickstream, "raw_clickstream", lambda lake: lake.raw),
    *[quality_checks(asset, asset.key.to_user_string(), _analytics_table(asset.key.to_user_string()))
      for asset in ANALYTICS_ASSETS],
]
