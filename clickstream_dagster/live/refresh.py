"""One refresh of the open days' live documents, from the landing rows after a cursor, with work
proportional to the new rows, not to the day: the documents keep their own mergeable state
(documents.py). `live_indices` runs one after each available-now ingest; a streaming
ingest run runs one after each micro-batch it lands. Closed days belong to the daily assets."""

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import dagster as dg
from pyspark import StorageLevel
from pyspark.sql import SparkSession

from config.settings import Settings
from spark.analytics import live
from spark.delta_lake import enable_change_feed, table_created_s, table_version

from ..partitions import open_days
from ..resources import ElasticsearchResource, LakeResource
from ..serving.indices import write_live
from . import documents as live_documents
from .anomalies import LiveAnomalies, window_floor
from .documents import FAMILIES, Family

LIVE_INDICES = dg.AssetKey("live_indices")
# New rows one refresh merges in Python; beyond this (a backlog) Spark computes the open days'
# states whole, which costs the day's rows instead.
MAX_INCREMENTAL_ROWS = 200_000
# What a refresh keeps of the last one: where it left the landing, which days were open, and the
# time up to which it judged the traffic windows that had ended (live/anomalies.py).
CURSOR_FIELDS = ("landing_version", "open_days", "windows_judged_through")
# Each family's table of whole-day states (spark/analytics/live.py).
SPARK_STATES = {live_documents.URL_POPULARITY_LIVE: live.URL_POPULARITY,
                live_documents.URL_COUNTRY_LIVE: live.URL_COUNTRY,
                live_documents.SESSIONS_LIVE: live.SESSIONS,
                live_documents.TRAFFIC_LIVE: live.TRAFFIC}

Documents = dict[Family, dict[str, dict[str, dict]]]  # family -> day -> id -> source


class LiveRefresh:
    """Refreshes the open days from the landing rows added since the last refresh. The cursor
    starts from `live_indices`' last materialization and moves with every refresh, so a run that
    refreshes many times reads each landing commit once."""

    def __init__(self, log: logging.Logger, run_id: str, instance: dg.DagsterInstance,
                 session: SparkSession, lake: LakeResource, elasticsearch: ElasticsearchResource,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.log, self.run_id, self.now = log, run_id, now
        self.session, self.lake, self.elasticsearch = session, lake, elasticsearch
        self.cursor = last_cursor(instance)
        self.specs = {family: family.spec.with_prefix(elasticsearch.index_prefix)
                      for family in FAMILIES}
        self._landing_created_s: int | None = None  # part of every document's version
        settings = Settings.from_env()
        self.anomalies = LiveAnomalies(log, run_id, session, lake, settings.anomaly_threshold,
                                       settings.anomaly_min_sessions)

    def __call__(self) -> dict:
        """Refresh once; returns the metadata of a `live_indices` materialization."""
        session, lake = self.session, self.lake
        now = self.now()
        days = open_days(now)
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
        if after is None and enable_change_feed(session, lake.landing):
            self.log.warning("turned on the landing table's change feed (a lake from before the "
                             "live path)")
            version = table_version(session, lake.landing)
        judged = previous.get("windows_judged_through")
        judged_through = datetime.fromisoformat(judged) if judged else None
        window_ended = judged_through is None or window_floor(now) > judged_through
        if after == version and not window_ended:
            return unchanged
        if after is None or self._landing_created_s is None:
            self._landing_created_s = table_created_s(session, lake.landing)
        phases = Phases()
        documents: Documents = {family: {} for family in FAMILIES}
        whole, new, windows = [], 0, {}
        if after is None:
            whole = list(days)
        elif after < version:  # else only a window has ended since
            whole, new, windows = self._merge_new_rows(after, version, days, documents, phases)
        if whole:
            new += self._compute_whole_days(whole, version, documents)
            phases.done("whole_days")
        traffic = documents[live_documents.TRAFFIC_LIVE]
        self.anomalies.fill_windows(self.elasticsearch.client(),
                                    self.specs[live_documents.TRAFFIC_LIVE], days, traffic, whole,
                                    version, judged_through, now)
        judged_through = now
        alerted = self.anomalies.score(traffic, now)
        phases.done("anomalies")
        written = self._write(documents)
        phases.done("write")
        self.log.info(f"{new:,} new rows on open days {days} -> documents {written}"
                      f"{f', days {whole} computed whole' if whole else ''}, {phases.total:.1f} s "
                      f"({phases.seconds})")
        self.cursor = {"landing_version": version, "open_days": days,
                       "windows_judged_through": judged_through.isoformat()}
        return {
            # The next refresh starts after this version of the landing table.
            "landing_version": version,
            "windows_judged_through": judged_through.isoformat(),
            "refresh": "incremental" if not whole else
                       "whole open days" if whole == days else f"incremental, whole days {whole}",
            "open_days": dg.MetadataValue.json(days),
            "new_rows": new,
            "windows_updated": dg.MetadataValue.json({d: len(w) for d, w in windows.items()}),
            "documents": dg.MetadataValue.json(written),
            "anomalies_alerted": len(alerted),
            "seconds": round(phases.total, 2),
            "phase_seconds": dg.MetadataValue.json(phases.seconds),
        }

    def _merge_new_rows(self, after: int, version: int, days: list[str], documents: Documents,
                        phases: "Phases") -> tuple[list[str], int, dict[str, set]]:
        """Fold the rows of landing commits after `after` into the documents they touch. Returns
        the days to compute whole instead, the new rows and the windows they fall in, per day."""
        table = (live.new_rows(self.session, self.lake.landing, after, version, days,
                               self.lake.include_bots)
                 .limit(MAX_INCREMENTAL_ROWS + 1).toArrow())
        phases.done("new_rows")
        if table.num_rows > MAX_INCREMENTAL_ROWS:
            self.log.info(f"over {MAX_INCREMENTAL_ROWS:,} new rows: the open days are computed "
                          "whole")
            return days, 0, {}  # the whole days' rows are counted as they are computed
        rows = table.to_pylist()
        windows: dict[str, set] = {}
        for row in rows:
            windows.setdefault(row["event_date"].isoformat(), set()).add(row["window_start"])
        dwell = live_documents.dwell_seconds(rows)
        client = self.elasticsearch.client()
        whole: set[str] = set()
        with ThreadPoolExecutor(len(FAMILIES), thread_name_prefix="live") as pool:
            merges = {family: pool.submit(live_documents.merge_new_rows, client, family,
                                          self.specs[family], rows, dwell, version, self.run_id)
                      for family in FAMILIES}
            for family, future in merges.items():
                merge = future.result()
                documents[family] = merge.documents
                whole |= merge.stateless_days
        phases.done("merge")
        if whole:
            self.log.warning(f"documents of {sorted(whole)} have no live state (a final load, or "
                             "from before live state): those days are computed whole")
            for per_day in documents.values():
                for day in whole:
                    per_day.pop(day, None)
        return sorted(whole), len(rows), windows

    def _compute_whole_days(self, days: list[str], version: int, documents: Documents) -> int:
        """The days' documents from all their landing rows, computed by Spark; returns the rows."""
        rows = live.all_rows(self.session, self.lake.landing, days, version,
                             self.lake.include_bots).persist(
            StorageLevel.MEMORY_AND_DISK)
        try:
            states = live.whole_day_states(rows)
            with ThreadPoolExecutor(len(FAMILIES), thread_name_prefix="live") as pool:
                tables = {family: pool.submit(lambda name=name: states[name].toArrow())
                          for family, name in SPARK_STATES.items()}
                for family, future in tables.items():
                    computed = live_documents.whole_day_documents(
                        family, self.specs[family], future.result().to_pylist(), version,
                        self.run_id)
                    documents[family].update(computed)
        finally:
            rows.unpersist()
        return sum(doc["events"] for per_day in documents[live_documents.URL_POPULARITY_LIVE]
                   .values() for doc in per_day.values() if doc["event_date"] in days)

    def _write(self, documents: Documents) -> dict[str, int]:
        """Write every family's documents, day by day; returns the documents per index family."""
        client = self.elasticsearch.client()
        replicas = self.elasticsearch.number_of_replicas

        def write(family: Family) -> int:
            reports = [write_live(client, self.specs[family], day, docs, replicas=replicas,
                                  landing_created_s=self._landing_created_s or 0)
                       for day, docs in documents[family].items() if docs]
            superseded = sum(report.superseded for report in reports)
            if superseded:
                self.log.warning(f"{superseded:,} documents of {self.specs[family].name} were not "
                                 "written: the index holds newer versions of them, from another "
                                 "refresh beside this one or a landing table created later")
            return sum(report.documents - report.superseded for report in reports)

        with ThreadPoolExecutor(len(FAMILIES), thread_name_prefix="live") as pool:
            counts = {family: pool.submit(write, family) for family in FAMILIES}
            return {self.specs[family].name: count.result() for family, count in counts.items()}


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


def last_cursor(instance: dg.DagsterInstance) -> dict:
    """The last recorded refresh's cursor: where it left the landing, and which days were open."""
    event = instance.get_latest_materialization_event(LIVE_INDICES)
    if event is None or event.asset_materialization is None:
        return {}
    return {key: value.value for key, value in event.asset_materialization.metadata.items()
            if key in CURSOR_FIELDS}
