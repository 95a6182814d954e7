"""The live path: open days reach Elasticsearch after every ingest, with work proportional to the
new rows, not to the day (see spark/analytics/live.py). Closed days belong to the daily assets."""


import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from spark.analytics import live
from spark.delta_lake import enable_change_feed, is_table, table_version

from ..partitions import LIVE_FRESHNESS, open_days
from ..resources import ElasticsearchResource, LakeResource, SparkResource
from ..serving import indices
from ..serving.indices import SESSIONS, URL_COUNTRY, URL_POPULARITY, IndexSpec, upsert_live
from .ingest import clickstream_landing
from .metadata import OWNERS, asset_tags, code_version

# Touched sessions whose start is looked up in Elasticsearch, to read only the parts since then;
# beyond this (a first refresh, a backlog) the day's parts are read whole.
MAX_SESSION_LOOKUPS = 20_000


@dg.asset(deps=[clickstream_landing], group_name="live", kinds={"spark", "delta", "elasticsearch"},
          freshness_policy=LIVE_FRESHNESS, owners=OWNERS, tags=asset_tags("live"),
          code_version=code_version(live, indices))
def live_indices(context: dg.AssetExecutionContext, lake: LakeResource, spark: SparkResource,
                 elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
    """Open days' url x country, 5-minute and session documents, refreshed for the new rows' windows."""
    session = spark.get_session()
    days = open_days()
    previous = _previous_metadata(context)
    version = table_version(session, lake.landing)
    unchanged = {**previous, "open_days": dg.MetadataValue.json(days), "new_rows": 0}
    if not days or version is None:
        context.log.info(f"nothing to refresh: open days {days}, landing version {version}")
        return dg.MaterializeResult(metadata=unchanged)
    after = previous.get("landing_version")
    if after is not None and after > version:
        context.log.warning(f"the landing table is at version {version}, behind the last refresh's "
                            f"{after}: it was recreated, so the open days are refreshed whole")
        after = None
    missing = [kind for kind in live.PARTS if not is_table(session, lake.live(kind))]
    if after is not None and missing:
        context.log.warning(f"live parts {missing} are missing: the open days are refreshed whole")
        after = None
    if after is None and enable_change_feed(session, lake.landing):
        context.log.warning("turned on the landing table's change feed (a lake from before the "
                            "live path)")
        version = table_version(session, lake.landing)
    if after == version:
        return dg.MaterializeResult(metadata=unchanged)
    _forget_closed_days(context, session, lake, days, previous)
    phases = Phases()
    rows = (live.all_rows(session, lake.landing, days) if after is None
            else live.new_rows(session, lake.landing, after, days))
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        windows, new = live.touched_windows(rows)
        phases.done("new_rows")
        reports = _refresh(context, session, lake, elasticsearch, rows, windows, version,
                           days if after is None else None, phases) if windows else {}
    finally:
        rows.unpersist()
    documents = {name: sum(r.documents for r in day_reports) for name, day_reports in reports.items()}
    context.log.info(f"{new:,} new rows on open days {days} -> {sum(map(len, windows.values()))} "
                     f"windows updated, documents {documents}, {phases.total:.1f} s "
                     f"({phases.seconds})")
    return dg.MaterializeResult(metadata={
        # The next refresh starts after this version of the landing table.
        "landing_version": version,
        "refresh": "incremental" if after is not None else "whole open days",
        "open_days": dg.MetadataValue.json(days),
        "new_rows": new,
        "windows_updated": dg.MetadataValue.json({d: len(w) for d, w in windows.items()}),
        "documents": dg.MetadataValue.json(documents),
        "seconds": round(phases.total, 2),
        "phase_seconds": dg.MetadataValue.json(phases.seconds),
    })


def _refresh(context, session, lake: LakeResource, elasticsearch: ElasticsearchResource,
             rows: DataFrame, windows: live.Windows, version: int, whole_days: list[str] | None,
             phases: "Phases") -> dict[str, list]:
    """Merge the new rows into the windows' parts, then serve the touched keys. The Spark jobs of
    each stage are independent and small, so they run side by side: each waits mostly on
    planning and Delta commits, not on the cores."""
    client = elasticsearch.client()
    specs = {spec.name: spec.with_prefix(elasticsearch.index_prefix)
             for spec in (URL_POPULARITY, URL_COUNTRY, SESSIONS)}
    touched_sessions = rows.select("event_date", "session_id").distinct()
    touched_urls = rows.select("event_date", F.col("url_path").alias("url"), "country").distinct()
    with ThreadPoolExecutor(3, thread_name_prefix="live") as pool:
        merges = [pool.submit(live.merge_into_parts, session, kind, lake.live(kind), rows, windows,
                              version, whole_days=whole_days)
                  for kind in (live.URL_COUNTRY_PARTS, live.SESSION_PARTS)]
        since = _session_starts(client, specs[SESSIONS.name], touched_sessions, windows) \
            if not whole_days else dict.fromkeys(windows)
        for future in merges:
            future.result()
        phases.done("merge_parts")
        url_country_parts, session_parts = (lake.live(live.URL_COUNTRY_PARTS),
                                            lake.live(live.SESSION_PARTS))
        served = {
            URL_POPULARITY.name: pool.submit(lambda: live.live_url_popularity(
                session, url_country_parts, windows).toArrow()),
            URL_COUNTRY.name: pool.submit(lambda: live.live_url_country(
                session, url_country_parts, touched_urls, list(windows)).toArrow()),
            SESSIONS.name: pool.submit(lambda: live.live_sessions(
                session, session_parts, touched_sessions, since).toArrow()),
        }
        reports = {name: [upsert_live(client, specs[name], day, _rows_of(future.result(), day),
                                      context.run.run_id, replicas=elasticsearch.number_of_replicas)
                          for day in windows]
                   for name, future in served.items()}
    phases.done("serve")
    return reports


class Phases:
    """Seconds per phase of a refresh, for the run log and the UI."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._started = self._last = time.monotonic()

    def done(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self._last, 2)
        self._last = now

    @property
    def total(self) -> float:
        return self._last - self._started


def _session_starts(client, spec: IndexSpec, touched: DataFrame, windows: live.Windows
                    ) -> dict[str, datetime | None]:
    """Per day, the earliest window a touched session may have parts in: its start as served so
    far, or the first touched window for a session not served yet. None: read the whole day."""
    keys = touched.limit(MAX_SESSION_LOOKUPS + 1).collect()
    if len(keys) > MAX_SESSION_LOOKUPS:
        return dict.fromkeys(windows)
    since = {day: starts[0] for day, starts in windows.items()}
    for day in windows:
        ids = [spec.doc_id({"event_date": day, "session_id": k["session_id"]})
               for k in keys if str(k["event_date"]) == day]
        if not ids:
            continue
        found = client.options(ignore_status=404).mget(
            index=spec.index_for(day), ids=ids, source_includes=["session_start"])
        for doc in found.get("docs", []):
            if doc.get("found"):
                start = datetime.fromisoformat(doc["_source"]["session_start"]).replace(tzinfo=None)
                since[day] = min(since[day], live.window_floor(start))
    return since


def _rows_of(table: pa.Table, day: str) -> pa.Table:
    return table.filter(pc.equal(table["event_date"], pa.scalar(date.fromisoformat(day))))


def _previous_metadata(context: dg.AssetExecutionContext) -> dict:
    """The last refresh's metadata: where it left the landing, and which days were open."""
    event = context.instance.get_latest_materialization_event(live_indices.key)
    if event is None or event.asset_materialization is None:
        return {}
    return {key: value.value for key, value in event.asset_materialization.metadata.items()
            if key in ("landing_version", "open_days")}


def _forget_closed_days(context, session, lake: LakeResource, days: list[str], previous: dict
                        ) -> None:
    """Once a day closes, the final recompute serves it; its live parts are dropped."""
    if previous.get("open_days") == days:
        return
    for name in live.PARTS:
        if is_table(session, lake.live(name)):
            live.drop_days_before(session, lake.live(name), days[0])
    context.log.info(f"open days are now {days}; live parts of earlier days dropped")
