"""An open day's live documents, merged in place from the landing rows that are new.

Each live document carries the mergeable state it is computed from (`live_state`: distinct-count
sketches and dwell sums, a session's bounds and its first and last events) and the landing
version it includes (`landing_version`). A refresh reads the touched documents by id, folds in the
new rows of later landing commits, and writes them back. Its cost follows the new rows, not the
day: no lake table of parts, no Spark job beyond reading the new rows.

Exactly once: a row whose commit a document already includes is skipped, so a refresh that failed
half way, repeated from the same cursor, counts nothing twice. The closed day's final recompute
replaces all of it with exact figures (and no `live_state`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import sys
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from datasketches import hll_sketch, tgt_hll_type
from elasticsearch import Elasticsearch

from spark.analytics.anomalies import UNKNOWN_COUNTRY
from spark.analytics.transform import FIRST_TOUCH, HLL_LG_K, WINDOW_MINUTES

from ..serving.indices import (
    ANOMALIES,
    SESSIONS,
    URL_COUNTRY,
    URL_POPULARITY,
    IndexSpec,
    json_value,
)

# Sketches are built as Spark's hll_sketch_agg builds them (HLL_LG_K registers, HLL_8): Spark's
# day-wide sketches and ours merge, and agree on every id they share.
WINDOW = timedelta(minutes=WINDOW_MINUTES)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MGET_CHUNK = 2_000

Row = dict[str, Any]  # a landing row: event fields, `window_start` and `_commit_version`
State = dict[str, Any]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per family
class Family:
    """One served table's live documents: the key a row falls under, how a row folds into the
    key's state, and the served fields a state gives."""

    spec: IndexSpec
    keys: Callable[[Row], tuple[tuple, ...]]  # the keys a row counts under (most: one)
    identity: Callable[[tuple], dict]  # the id fields (and other fixed fields) of a key
    fold: Callable[[State | None, Row, float | None], State]  # (state, row, row's dwell)
    serve: Callable[[State], dict]
    # (key, state) of a row of the Spark table that computes the states of whole days
    from_spark: Callable[[dict], tuple[tuple, State]]


def micros(ts: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp loses the last digits)."""
    return ((ts if ts.tzinfo else ts.replace(tzinfo=UTC)) - EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def _least(a, b):
    """Spark's min: nulls are ignored."""
    return b if a is None else a if b is None else min(a, b)


def _seconds(start_us: int, end_us: int) -> float:
    return round(end_us / 1e6 - start_us / 1e6, 3)


# -- url_popularity_5m: events per (window, url) ------------------------------------------------

def _popularity_fold(state: State | None, row: Row, dwell: float | None) -> State:
    return {"events": (state or {}).get("events", 0) + 1}


URL_POPULARITY_LIVE = Family(
    URL_POPULARITY,
    keys=lambda row: ((row["event_date"], micros(row["window_start"]), row["url_path"]),),
    identity=lambda key: {"event_date": key[0], "window_start": from_micros(key[1]),
                          "window_end": from_micros(key[1]) + WINDOW, "url": key[2]},
    fold=_popularity_fold,
    serve=lambda state: {"events": state["events"]},
    from_spark=lambda r: ((r["event_date"], micros(r["window_start"]), r["url"]),
                          {"events": r["events"]}),
)


# -- url_country: counts, distinct users and sessions (sketches), dwell per (day, url, country) --

def _sketch(encoded: str | None) -> hll_sketch:
    return (hll_sketch.deserialize(base64.b64decode(encoded)) if encoded
            else hll_sketch(HLL_LG_K, tgt_hll_type.HLL_8))


def encode_sketch(sketch: bytes | hll_sketch) -> str:
    raw = sketch if isinstance(sketch, bytes) else sketch.serialize_compact()
    return base64.b64encode(raw).decode()


def _url_country_fold(state: State | None, row: Row, dwell: float | None) -> State:
    state = dict(state or {"events": 0, "page_views": 0, "users_sketch": None,
                           "sessions_sketch": None, "dwell_s": None, "dwell_views": 0})
    state["events"] += 1
    state["page_views"] += row["event_type"] == "page_view"
    for sketch_field, value in (("users_sketch", row["user_id"]),
                                ("sessions_sketch", row["session_id"])):
        if value is not None:
            # Decoded once per document and refresh, encoded again by live_document.
            sketch = state[sketch_field]
            if not isinstance(sketch, hll_sketch):
                sketch = state[sketch_field] = _sketch(sketch)
            sketch.update(value)
    if dwell is not None:
        state["dwell_s"] = (state["dwell_s"] or 0.0) + dwell
        state["dwell_views"] += 1
    return state


def _url_country_serve(state: State) -> dict:
    return {"events": state["events"], "page_views": state["page_views"],
            "unique_users": _estimate(state["users_sketch"]),
            "sessions": _estimate(state["sessions_sketch"]),
            "avg_time_on_page_s": (round(state["dwell_s"] / state["dwell_views"], 3)
                                   if state["dwell_views"] else None)}


def _estimate(sketch: str | hll_sketch | None) -> int:
    if sketch is None:
        return 0
    return round((sketch if isinstance(sketch, hll_sketch) else _sketch(sketch)).get_estimate())


URL_COUNTRY_LIVE = Family(
    URL_COUNTRY,
    keys=lambda row: ((row["event_date"], row["url_path"], row["country"]),),
    identity=lambda key: {"event_date": key[0], "url": key[1], "country": key[2]},
    fold=_url_country_fold,
    serve=_url_country_serve,
    from_spark=lambda r: ((r["event_date"], r["url"], r["country"]), {
        "events": r["events"], "page_views": r["page_views"],
        "users_sketch": encode_sketch(r["users_sketch"]) if r["users_sketch"] else None,
        "sessions_sketch": encode_sketch(r["sessions_sketch"]) if r["sessions_sketch"] else None,
        "dwell_s": r["dwell_s"], "dwell_views": r["dwell_views"]}),
)


# -- sessions: bounds, counts, first and last events, as user_sessions computes them -------------

def _session_fold(state: State | None, row: Row, dwell: float | None) -> State:
    ts = micros(row["event_ts"])
    # Events order as Spark's struct(event_ts, event_id, url_path, first-touch fields) does.
    event = [ts, row["event_id"], row["url_path"], *(row.get(c) for c in FIRST_TOUCH.values())]
    view = event if row["event_type"] == "page_view" else None
    if state is None:
        return {"user_id": row["user_id"], "start": ts, "end": ts, "events": 1,
                "page_views": int(view is not None), "first": event, "last_view": view,
                "last": event, "converted": row["event_type"] == "purchase",
                "device_type": row["device_type"], "country": row["country"]}
    order = lambda e: (e[0], e[1])  # noqa: E731 - event ids are unique within a session
    return {"user_id": _least(state["user_id"], row["user_id"]),
            "start": min(state["start"], ts), "end": max(state["end"], ts),
            "events": state["events"] + 1, "page_views": state["page_views"] + (view is not None),
            "first": min(state["first"], event, key=order),
            "last_view": max((v for v in (state["last_view"], view) if v), key=order, default=None),
            "last": max(state["last"], event, key=order),
            "converted": state["converted"] or row["event_type"] == "purchase",
            "device_type": _least(state["device_type"], row["device_type"]),
            "country": _least(state["country"], row["country"])}


def _session_serve(state: State) -> dict:
    exit_view = state["last_view"] if state["last_view"] and state["last_view"][2] is not None \
        else state["last"]
    return {"user_id": state["user_id"], "session_start": from_micros(state["start"]),
            "session_end": from_micros(state["end"]),
            "duration_s": _seconds(state["start"], state["end"]), "events": state["events"],
            "page_views": state["page_views"], "entry_page": state["first"][2],
            "exit_page": exit_view[2], "converted": state["converted"],
            "device_type": state["device_type"], "country": state["country"],
            **_first_touch(state["first"])}


def _first_touch(first: list) -> dict:
    """The session's first-touch fields; a state kept before they existed has none (null)."""
    return {name: first[3 + i] if len(first) > 3 + i else None for i, name in enumerate(FIRST_TOUCH)}


SESSIONS_LIVE = Family(
    SESSIONS,
    keys=lambda row: ((row["event_date"], row["session_id"]),),
    identity=lambda key: {"event_date": key[0], "session_id": key[1]},
    fold=_session_fold,
    serve=_session_serve,
    from_spark=lambda r: ((r["event_date"], r["session_id"]), {
        "user_id": r["user_id"], "start": micros(r["session_start"]),
        "end": micros(r["session_end"]), "events": r["events"], "page_views": r["page_views"],
        "first": _event(r["_first"]), "last_view": _event(r["_last_view"]),
        "last": _event(r["_last"]), "converted": bool(r["_converted"]),
        "device_type": r["device_type"], "country": r["country"]}),
)


def _event(struct: dict | None) -> list | None:
    return None if struct is None else [micros(struct["event_ts"]), struct["event_id"],
                                        struct["url_path"], *(struct[c] for c in FIRST_TOUCH.values())]


# -- traffic_anomalies: each 5-minute window's sessions, overall and per country -----------------

@functools.lru_cache(maxsize=1 << 16)  # a session's rows come in runs, and count under two keys
def session_hash(session_id: str) -> int:
    """64 bits of a session id: a window's set of them counts its sessions exactly unless two of
    its sessions collide (about 1 in 10^11 for 10,000 sessions), at an eighth of the ids' size."""
    return int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=8).digest(), "little")


def encode_hashes(hashes: set[int]) -> str:
    packed = array("Q", sorted(hashes))
    if sys.byteorder != "little":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def _hashes(encoded: str | set[int]) -> set[int]:
    if isinstance(encoded, set):
        return encoded
    packed = array("Q")
    packed.frombytes(base64.b64decode(encoded))
    if sys.byteorder != "little":
        packed.byteswap()
    return set(packed)


def _traffic_fold(state: State | None, row: Row, dwell: float | None) -> State:
    state = dict(state or {"session_hashes": set()})
    # Decoded once per document and refresh, encoded again by live_document.
    hashes = state["session_hashes"] = _hashes(state["session_hashes"])
    if row["session_id"] is not None:
        hashes.add(session_hash(row["session_id"]))
    return state


def _traffic_keys(row: Row) -> tuple[tuple, ...]:
    window = micros(row["window_start"])
    return ((row["event_date"], window, "all", "all"),
            (row["event_date"], window, "country",
             UNKNOWN_COUNTRY if row["country"] is None else row["country"]))


def window_sessions(state: State) -> int:
    return len(_hashes(state["session_hashes"]))


# Served with its sessions only: its baseline and verdict come from the trailing days
# (live/anomalies.py).
TRAFFIC_LIVE = Family(
    ANOMALIES,
    keys=_traffic_keys,
    identity=lambda key: {"event_date": key[0], "window_start": from_micros(key[1]),
                          "window_end": from_micros(key[1]) + WINDOW, "dimension": key[2],
                          "segment": key[3]},
    fold=_traffic_fold,
    serve=lambda state: {"sessions": window_sessions(state)},
    from_spark=lambda r: ((r["event_date"], micros(r["window_start"]), r["dimension"], r["segment"]),
                          {"session_hashes": {session_hash(s) for s in r["session_ids"]}}),
)

FAMILIES = (URL_POPULARITY_LIVE, URL_COUNTRY_LIVE, SESSIONS_LIVE, TRAFFIC_LIVE)


# -- the documents -------------------------------------------------------------------------------

def live_document(family: Family, spec: IndexSpec, key: tuple, state: State, version: int,
                  materialization: str) -> tuple[str, dict]:
    """(id, source) of a key's live document: served fields, then the state they came from."""
    doc = {k: json_value(v) for k, v in {**family.identity(key), **family.serve(state)}.items()}
    doc.update(live_state=_encoded(state), landing_version=version,
               materialization=materialization, final=False)
    return spec.doc_id(doc), doc


def whole_day_documents(family: Family, spec: IndexSpec, records: Iterable[dict], version: int,
                        materialization: str) -> dict[str, dict[str, dict]]:
    """Documents, per day, from the states Spark computed over whole days of rows."""
    documents: dict[str, dict[str, dict]] = {}
    for record in records:
        key, state = family.from_spark(record)
        doc_id, doc = live_document(family, spec, key, state, version, materialization)
        documents.setdefault(doc["event_date"], {})[doc_id] = doc
    return documents


def dwell_seconds(rows: list[Row]) -> list[float | None]:
    """Per row, the seconds until its session's next page view among `rows` (page views only), as
    url_country_daily measures time on page; the final recompute measures it over the whole day."""
    dwell: list[float | None] = [None] * len(rows)
    views: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        if row["event_type"] == "page_view":
            views.setdefault((row["event_date"], row["session_id"]), []).append(index)
    for indices in views.values():
        indices.sort(key=lambda i: (rows[i]["event_ts"], rows[i]["event_id"]))
        for current, following in itertools.pairwise(indices):
            dwell[current] = _seconds(micros(rows[current]["event_ts"]),
                                      micros(rows[following]["event_ts"]))
    return dwell


@dataclass
class Merge:
    """One family's documents after folding in new rows, per day; `stateless_days` are days where
    a touched document has no state to merge into (a final load, or a document from before live
    state), which the caller refreshes whole instead."""

    documents: dict[str, dict[str, dict]]  # day -> id -> source
    stateless_days: set[str]


def merge_new_rows(client: Elasticsearch, family: Family, spec: IndexSpec, rows: list[Row],
                   dwell: list[float | None], version: int, materialization: str) -> Merge:
    """Fold `rows` into the documents of the keys they touch, read from Elasticsearch by id."""
    by_key = _rows_by_key(family, rows)
    ids = {key: document_id(family, spec, key) for key in by_key}
    merge = Merge({}, set())
    for day, keys in _per_day(by_key).items():
        existing = read_documents(client, spec.index_for(day), [ids[k] for k in keys])
        if any(doc is not None and "live_state" not in doc for doc in existing.values()):
            merge.stateless_days.add(day)
            continue
        merge.documents[day] = fold_rows(family, spec, existing, {k: by_key[k] for k in keys},
                                         rows, dwell, version, materialization)
    return merge


def fold_rows(family: Family, spec: IndexSpec, existing: dict[str, dict | None],
              by_key: dict[tuple, list[int]], rows: list[Row], dwell: list[float | None],
              version: int, materialization: str) -> dict[str, dict]:
    """The documents (id -> source) of the keys in `by_key` after folding in their rows (indices
    into `rows`) that are newer than what each existing document includes."""
    documents = {}
    for key, indices in by_key.items():
        current = existing.get(document_id(family, spec, key))
        included = current["landing_version"] if current else -1
        state = current["live_state"] if current else None
        fresh = [i for i in indices if rows[i]["_commit_version"] > included]
        if not fresh:
            continue  # a repeated refresh: this document already holds these rows
        for i in fresh:
            state = family.fold(state, rows[i], dwell[i])
        doc_id, doc = live_document(family, spec, key, state, version, materialization)
        documents[doc_id] = doc
    return documents


def _rows_by_key(family: Family, rows: list[Row]) -> dict[tuple, list[int]]:
    by_key: dict[tuple, list[int]] = {}
    for index, row in enumerate(rows):
        for key in family.keys(row):
            by_key.setdefault(key, []).append(index)
    return by_key


def document_id(family: Family, spec: IndexSpec, key: tuple) -> str:
    return spec.doc_id({k: json_value(v) for k, v in family.identity(key).items()})


def read_documents(client: Elasticsearch, index: str, ids: list[str]) -> dict[str, dict | None]:
    """The sources of `ids` in `index` (realtime, no refresh needed); None where missing."""
    found: dict[str, dict | None] = dict.fromkeys(ids)
    for first in range(0, len(ids), MGET_CHUNK):
        answer = client.options(ignore_status=404).mget(index=index,
                                                        ids=ids[first:first + MGET_CHUNK])
        for doc in answer.get("docs", []):
            if doc.get("found"):
                found[doc["_id"]] = doc["_source"]
    return found


def _encoded(state: State) -> State:
    return {k: encode_sketch(v) if isinstance(v, hll_sketch) else
               encode_hashes(v) if isinstance(v, set) else v for k, v in state.items()}


def _per_day(by_key: Iterable[tuple]) -> dict[str, list[tuple]]:
    days: dict[str, list[tuple]] = {}
    for key in by_key:
        day = key[0]
        days.setdefault(day.isoformat() if isinstance(day, date) else str(day), []).append(key)
    return days
