"""Live anomaly scores: an open day's 5-minute windows are judged as they fill, against the
baselines its final scoring will use, so a spike at 14:00 alerts at 14:00, not after midnight.

- A spike is judged as soon as the window's sessions pass it: they only grow, so a spike stays one.
- A drop is judged once the window has ended, and a window that ended with no session is served
  with none (as the final scoring's grid has it), so a country that goes silent is a drop too. A
  site that goes silent sends no refresh: its windows are judged at the next one.
- The baselines come from the trailing days' raw rows, read once per open day and again whenever
  the raw table changes (a day closed, a backfill), checked as each window ends; then every window
  of the day so far is scored again.
- Each anomalous window is alerted once, through the same webhook as the daily check; its document
  remembers that it was, and so does the process. A refresh repeated after a failed write, or a
  day computed whole again by a new run, may alert it again.

When the day closes, its final recompute replaces these documents with the same figures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime

from elasticsearch import Elasticsearch, helpers
from pyspark.sql import SparkSession

from spark.analytics import anomalies, live
from spark.delta_lake import table_version

from ..alerts import post_alert
from ..resources import LakeResource
from ..serving.indices import IndexSpec
from .documents import TRAFFIC_LIVE, WINDOW, document_id, live_document, micros, read_documents

Segment = tuple[str, str]  # (dimension, segment)
DayDocuments = dict[str, dict[str, dict]]  # day -> id -> source
ALL = ("all", "all")
SEGMENTS_SHOWN = 1_000  # terms per dimension when listing a day's segments; countries are fewer


@dataclass(frozen=True)
class DayBaselines:
    """An open day's baseline per (segment, slot), and the raw table version it was read at."""

    per_window: dict[tuple[str, str, int], anomalies.Baseline]
    trailing_days: int  # trailing days with traffic: what a segment they never saw is judged on
    raw_version: int | None

    @property
    def segments(self) -> set[Segment]:
        return {(dimension, segment) for dimension, segment, _ in self.per_window} | {ALL}

    def of(self, segment: Segment, slot: int) -> anomalies.Baseline:
        return (self.per_window.get((*segment, slot))
                or anomalies.new_segment(self.trailing_days))


class LiveAnomalies:
    """Scores a refresh's live traffic windows, fills and judges the windows that ended since the
    last refresh, and alerts the anomalies it finds."""

    def __init__(self, log: logging.Logger, run_id: str, session: SparkSession,
                 lake: LakeResource, threshold: float, min_sessions: int):
        self.log, self.run_id = log, run_id
        self.session, self.lake = session, lake
        self.threshold, self.min_sessions = threshold, min_sessions
        self._baselines: dict[str, DayBaselines] = {}
        self._seen: dict[str, set[Segment]] = {}  # per open day, the segments it has documents in
        # What this process alerted: a day computed whole again has no `alerted` in its states.
        self._alerted: set[tuple[str, str, str]] = set()

    def fill_windows(self, client: Elasticsearch, spec: IndexSpec, days: list[str],
                     documents: DayDocuments, whole_days: list[str], version: int,
                     judged_through: datetime | None, now: datetime) -> None:
        """Add to `documents` the windows to judge again: each segment's windows that ended after
        `judged_through` and by `now`, and every ended window of a segment new to the day. They
        are read from the index unless this refresh holds them, and have no session where the
        index has none either. A day without traffic has no windows, as in the final scoring's
        grid."""
        for day in days:
            held = documents.setdefault(day, {})
            index = spec.index_for(day)
            # A day computed whole this refresh is all in `documents`; otherwise the index holds
            # the segments earlier refreshes saw.
            before = (set() if day in whole_days else self._seen[day] if day in self._seen
                      else _segments_in_index(client, index))
            seen = self._seen[day] = before | _segments_of(held.values())
            ended = _ended_slots(day, judged_through, now)
            if not seen or not (ended or seen - before):
                continue
            if ended and self._baselines_changed(day):
                ended = _ended_slots(day, None, now)  # every window so far, on the new baselines
            expected = self.baselines(day).segments
            wanted = {document_id(TRAFFIC_LIVE, spec, _key(day, slot, segment)): (slot, segment)
                      for slot in ended for segment in expected | seen}
            wanted.update({document_id(TRAFFIC_LIVE, spec, _key(day, slot, segment)): (slot, segment)
                           for slot in _ended_slots(day, None, now)
                           for segment in seen - before - expected})
            if day in whole_days:
                _drop_final_windows_to_come(client, index, now)
            unread = [] if day in whole_days else [i for i in wanted if i not in held]
            existing = read_documents(client, index, unread)
            # A document without live state is a final load's (a backfill of the open day): it
            # is judged already, and has nothing to fold into.
            held.update({i: doc for i, doc in existing.items() if doc and "live_state" in doc})
            for i, (slot, segment) in wanted.items():
                if i not in held and existing.get(i) is None:
                    held[i] = live_document(TRAFFIC_LIVE, spec, _key(day, slot, segment),
                                            {"session_hashes": set()}, version, self.run_id)[1]

    def score(self, documents: DayDocuments, now: datetime) -> list[dict]:
        """Set every document's baseline, spread, score and verdict (in place), and leave out
        the ones read back that keep theirs; returns the anomalies not alerted before, alerted
        now."""
        found = []
        for day, per_day in documents.items():
            if not per_day:
                continue
            baselines = self.baselines(day)
            for doc_id, doc in list(per_day.items()):
                window = datetime.fromisoformat(doc["window_start"])
                segment = (doc["dimension"], doc["segment"])
                verdict = anomalies.judge(doc["sessions"], baselines.of(segment, _slot(window)),
                                          self.threshold, self.min_sessions)
                if verdict["direction"] == "drop" and window + WINDOW > now:
                    verdict.update(is_anomaly=False, direction=None)  # still filling
                if all(k in doc and doc[k] == v for k, v in verdict.items()):
                    del per_day[doc_id]  # read back to judge again, and judged the same
                    continue
                doc.update(verdict)
                if not verdict["is_anomaly"]:
                    continue
                window_key = (doc["window_start"], *segment)
                if not (doc["live_state"].get("alerted") or window_key in self._alerted):
                    found.append({k: doc[k] for k in ("window_start", "dimension", "segment",
                                                      "direction", "sessions", "baseline",
                                                      "score")})
                doc["live_state"]["alerted"] = True
                self._alerted.add(window_key)
        if found:
            self._alert(found)
        return found

    def baselines(self, day: str) -> DayBaselines:
        if day not in self._baselines:
            self._baselines[day] = self._read_baselines(day, table_version(self.session,
                                                                           self.lake.raw))
        return self._baselines[day]

    def _baselines_changed(self, day: str) -> bool:
        """Read the day's baselines again if the raw table changed since they were read; True
        if it had."""
        raw_version = table_version(self.session, self.lake.raw)
        cached = self._baselines.get(day)
        if cached is not None and cached.raw_version == raw_version:
            return False
        self._baselines[day] = self._read_baselines(day, raw_version)
        return cached is not None

    def _read_baselines(self, day: str, raw_version: int | None) -> DayBaselines:
        if raw_version is None:
            return DayBaselines({}, 0, None)
        rows = live.trailing_baselines(self.session, self.lake.raw, day,
                                       self.lake.include_bots).toArrow().to_pylist()
        per_window = {(r["dimension"], r["segment"], r["slot"]):
                      anomalies.Baseline(r["baseline"], r["mad"], r["history_days"]) for r in rows}
        trailing_days = max((r["history_days"] for r in rows), default=0)
        self.log.info(f"baselines of {day}: {len(per_window):,} windows over {trailing_days} "
                      f"trailing day(s) with traffic, raw table version {raw_version}")
        return DayBaselines(per_window, trailing_days, raw_version)

    def _alert(self, found: list[dict]) -> None:
        summary = ", ".join(f"{a['direction']} in {a['segment']} at {a['window_start']} "
                            f"({a['sessions']} sessions, baseline {a['baseline']})"
                            for a in found[:3])
        self.log.warning(f"ALERT: {len(found)} live anomalous traffic window(s): {summary}")
        post_alert({"kind": "traffic_anomaly", "live": True, "asset": "live_indices",
                    "run_id": self.run_id, "anomalies": len(found),
                    "windows": sorted(found, key=lambda a: -abs(a["score"]))})


def _ended_slots(day: str, after: datetime | None, now: datetime) -> list[int]:
    """The slots of `day` whose window ended after `after` (None: since the day began) and by
    `now`."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return [slot for slot in range(anomalies.WINDOWS_PER_DAY)
            if (after is None or start + (slot + 1) * WINDOW > after)
            and start + (slot + 1) * WINDOW <= now]


def window_floor(now: datetime) -> datetime:
    """The start of the 5-minute window `now` is in: every window before it has ended."""
    return now - (now - now.replace(hour=0, minute=0, second=0, microsecond=0)) % WINDOW


def _slot(window_start: datetime) -> int:
    midnight = window_start.replace(hour=0, minute=0, second=0, microsecond=0)
    return (window_start - midnight) // WINDOW


def _key(day: str, slot: int, segment: Segment) -> tuple:
    """A traffic window's key, as TRAFFIC_LIVE.keys gives it for a row."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) + slot * WINDOW
    return (date.fromisoformat(day), micros(start), *segment)


def _drop_final_windows_to_come(client: Elasticsearch, index: str, now: datetime) -> None:
    """A final load of an open day (a backfill from the UI) scored its windows still to come as
    empty: drop them, or each would send the day back to a whole recompute when its rows come."""
    if not client.indices.exists(index=index):
        return
    query = {"bool": {"filter": [{"term": {"final": True}},
                                 {"range": {"window_end": {"gt": now.isoformat()}}}]}}
    found = helpers.scan(client, index=index, query={"query": query}, _source=False)
    helpers.bulk(client, ({"_op_type": "delete", "_index": hit["_index"], "_id": hit["_id"]}
                          for hit in found), raise_on_error=False, refresh=True)


def _segments_of(docs) -> set[Segment]:
    return {(doc["dimension"], doc["segment"]) for doc in docs}


def _segments_in_index(client: Elasticsearch, index: str) -> set[Segment]:
    """The (dimension, segment) pairs the day's live documents have."""
    answer = client.options(ignore_status=404).search(
        index=index, size=0, aggs={"dimension": {
            "terms": {"field": "dimension", "size": 10},
            "aggs": {"segment": {"terms": {"field": "segment", "size": SEGMENTS_SHOWN}}}}})
    buckets = answer.get("aggregations", {}).get("dimension", {}).get("buckets", [])
    return {(d["key"], s["key"]) for d in buckets for s in d["segment"]["buckets"]}
