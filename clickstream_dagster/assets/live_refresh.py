"""One refresh of the open days' live documents, from the landing rows after a cursor, with work
proportional to the new rows, not to the day (see spark/analytics/live.py). `live_indices` runs one
after each available-now ingest; a streaming ingest run runs one after each micro-batch it lands.
Closed days belong to the daily assets."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from spark.analytics import live
from spark.delta_lake import enable_change_feed, is_table, table_version

from ..partitions import open_days
from ..resources import ElasticsearchResource, LakeResource
from ..serving.indices import SESSIONS, URL_COUNTRY, URL_POPULARITY, IndexSpec, upsert_live

LIVE_INDICES = dg.AssetKey("live_indices")
# Touched sessions whose start is looked up in Elasticsearch, to read only the parts since then;
# beyond this (a first refresh, a backlog) the day's parts are read whole.
MAX_SESSION_LOOKUPS = 20_000
# What a refresh keeps of the last one: where it left the landing table, and which days were open.
CURSOR_FIELDS = ("landing_version", "open_days")


class LiveRefresh:
    """Refreshes the open days from the landing rows added since the last refresh. The cursor
    starts from `live_indices`' last materialization and moves with every refresh, so a run that
    refreshes many times reads each landing commit once."""

    def __init__(self, log: logging.Logger, run_id: str, instance: dg.DagsterInstance,
                 session: SparkSession, lake: LakeResource, elasticsearch: ElasticsearchResource):
        self.log, self.run_id = log, run_id
        self.session, self.lake, self.elasticsearch = session, lake, elasticsearch
        self.cursor = last_cursor(instance)
        # A merge replaces its windows with rows built only from those windows, so Delta's extra
        # pass that checks every written row against the replaced predicate finds nothing.
        session.conf.set("spark.databricks.delta.replaceWhere.constraintCheck.enabled", "false")

    def __call__(self) -> dict:
        """Refresh once; returns the metadata of a `live_indices` materialization."""
        session, lake = self.session, self.lake
        days = open_days()
        previous = self.cursor
        version = table_version(session, lake.landing)
        unchanged = {**previous, "open_days": dg.MetadataValue.json(days), "new_rows": 0}
        if not days or version is None:
            self.log.info(f"nothing to refresh: open days {days}, landing version {version}")
            return unchanged
        after = previous.get("landing_version")
        if after is not None and after > version:
            self.log.warning(f"the landing table is at version {version}, behind the last "
                             f"refresh's {after}: it was recreated, so the open days are refreshed "
                             "whole")
            after = None
        missing = [kind for kind in live.PARTS if not is_table(session, lake.live(kind))]
        if after is not None and missing:
            self.log.warning(f"live parts {missing} are missing: the open days are refreshed whole")
            after = None
        if after is None and enable_change_feed(session, lake.landing):
            self.log.warning("turned on the landing table's change feed (a lake from before the "
                             "live path)")
            version = table_version(session, lake.landing)
        if after == version:
            return unchanged
        self._forget_closed_days(days, previous)
        phases = Phases()
        rows = (live.all_rows(session, lake.landing, days) if after is None
                else live.new_rows(session, lake.landing, after, days))
        rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            windows, new = live.touched_windows(rows)
            phases.done("new_rows")
            reports = self._refresh(rows, windows, version, days if after is None else None,
                                    phases) if windows else {}
        finally:
            rows.unpersist()
        documents = {name: sum(r.documents for r in day_reports)
                     for name, day_reports in reports.items()}
        self.log.info(f"{new:,} new rows on open days {days} -> "
                      f"{sum(map(len, windows.values()))} windows updated, documents {documents}, "
                      f"{phases.total:.1f} s ({phases.seconds})")
        self.cursor = {"landing_version": version, "open_days": days}
        return {
            # The next refresh starts after this version of the landing table.
            "landing_version": version,
            "refresh": "incremental" if after is not None else "whole open days",
            "open_days": dg.MetadataValue.json(days),
            "new_rows": new,
            "windows_updated": dg.MetadataValue.json({d: len(w) for d, w in windows.items()}),
            "documents": dg.MetadataValue.json(documents),
            "seconds": round(phases.total, 2),
            "phase_seconds": dg.MetadataValue.json(phases.seconds),
        }

    def _refresh(self, rows: DataFrame, windows: live.Windows, version: int,
                 whole_days: list[str] | None, phases: "Phases") -> dict[str, list]:
        """Merge the new rows into the windows' parts, then serve the touched keys. The Spark jobs of
        each stage are independent and small, so they run side by side: each waits mostly on
        planning and Delta commits, not on the cores."""
        session, lake, elasticsearch = self.session, self.lake, self.elasticsearch
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
                                          self.run_id, replicas=elasticsearch.number_of_replicas)
                              for day in windows]
                       for name, future in served.items()}
        phases.done("serve")
        return reports

    def _forget_closed_days(self, days: list[str], previous: dict) -> None:
        """Once a day closes, the final recompute serves it; its live parts are dropped."""
        if previous.get("open_days") == days:
            return
        for name in live.PARTS:
            if is_table(self.session, self.lake.live(name)):
                live.drop_days_before(self.session, self.lake.live(name), days[0])
        self.log.info(f"open days are now {days}; live parts of earlier days dropped")


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


def last_cursor(instance: dg.DagsterInstance) -> dict:
    """The last recorded refresh's cursor: where it left the landing, and which days were open."""
    event = instance.get_latest_materialization_event(LIVE_INDICES)
    if event is None or event.asset_materialization is None:
        return {}
    return {key: value.value for key, value in event.asset_materialization.metadata.items()
            if key in CURSOR_FIELDS}
