"""Elasticsearch indices for the served tables: templates with explicit mappings, one index per
day behind two aliases, deterministic document ids, bulk loading that fails loudly.

Readers use the family alias (`clickstream-sessions`) or the day's alias
(`clickstream-sessions-2026.11.23`); neither ever shows a half-loaded day. A final load fills a
new index, checks its count, and only then moves both aliases to it and drops the old index, in
one atomic alias request. The live path writes an open day's documents through the day alias."""

import contextlib
import hashlib
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime

import pyarrow as pa
from elasticsearch import BadRequestError, Elasticsearch, helpers

KEYWORD = {"type": "keyword"}
LONG = {"type": "long"}
DOUBLE = {"type": "double"}
DATE = {"type": "date"}
MAX_ID_BYTES = 512  # Elasticsearch's limit on _id
FAILURES_SHOWN = 20
BULK_THREADS = 2
REFRESH_INTERVAL = "30s"
LIVE_SUFFIX = "_live"  # the index an open day's live documents start in, before any final load
# About 50-byte names, under Elasticsearch's 4 KB request line.
DELETED_PER_REQUEST = 50


@dataclass(frozen=True)
class IndexSpec:
    """One served table: where it lives in the lake, how it is mapped, and its document id."""

    name: str  # index family, e.g. clickstream-url-country
    table: str  # analytics table in the lake
    id_fields: tuple[str, ...]
    fields: dict[str, dict]

    @property
    def alias(self) -> str:
        return self.name

    def with_prefix(self, prefix: str) -> "IndexSpec":
        """The same spec under another family prefix (default "clickstream")."""
        return replace(self, name=prefix + self.name.removeprefix("clickstream"))

    def index_for(self, day: str) -> str:
        """The day's alias: what readers and the live path address a day by."""
        return f"{self.name}-{date.fromisoformat(day):%Y.%m.%d}"

    def template(self, replicas: int) -> dict:
        return {
            "index_patterns": [f"{self.name}-*"],
            "template": {
                "settings": {"number_of_shards": 1, "number_of_replicas": replicas,
                             "refresh_interval": REFRESH_INTERVAL},
                # Strict: a column the mapping does not know is an error, never a guessed type.
                "mappings": {"dynamic": "strict", "properties": self.properties},
                # No aliases here: an index joins its aliases only once it holds its whole day.
            },
            "priority": 200,
            "_meta": {"managed_by": "clickstream_dagster"},
        }

    @property
    def properties(self) -> dict[str, dict]:
        # `final` tells a closed day's checked recompute from the live path's refreshes of an open
        # day; `materialization` names the run that wrote the document. A live document also
        # keeps the state it merges from, stored but not searchable, and the landing version it
        # includes (live/documents.py).
        return {**self.fields, "materialization": KEYWORD, "final": {"type": "boolean"},
                "live_state": {"type": "object", "enabled": False}, "landing_version": LONG}

    def doc_id(self, doc: dict) -> str:
        readable = "|".join(str(doc[f]) for f in self.id_fields)
        if len(readable.encode()) <= MAX_ID_BYTES:
            return readable
        return hashlib.sha256(readable.encode()).hexdigest()


URL_COUNTRY = IndexSpec(
    "clickstream-url-country", "url_country_daily", ("event_date", "url", "country"),
    {"event_date": DATE, "url": KEYWORD, "country": KEYWORD, "events": LONG, "page_views": LONG,
     "unique_users": LONG, "sessions": LONG, "avg_time_on_page_s": DOUBLE},
)
URL_POPULARITY = IndexSpec(
    "clickstream-url-popularity-5m", "url_popularity_5m", ("window_start", "url"),
    {"event_date": DATE, "window_start": DATE, "window_end": DATE, "url": KEYWORD, "events": LONG},
)
SESSIONS = IndexSpec(
    "clickstream-sessions", "user_sessions", ("event_date", "session_id"),
    {"event_date": DATE, "session_id": KEYWORD, "user_id": KEYWORD, "session_start": DATE,
     "session_end": DATE, "duration_s": DOUBLE, "events": LONG, "page_views": LONG,
     "entry_page": KEYWORD, "exit_page": KEYWORD, "converted": {"type": "boolean"},
     "device_type": KEYWORD, "country": KEYWORD,
     # First touch (the session's first event): channel is its referrer class.
     "channel": KEYWORD, "campaign": KEYWORD, "browser": KEYWORD, "device_class": KEYWORD},
)
# Final only: a closed day's funnel, per segment (the live path serves no funnel).
FUNNEL = IndexSpec(
    "clickstream-funnel", "conversion_funnel", ("event_date", "dimension", "segment", "step_number"),
    {"event_date": DATE, "dimension": KEYWORD, "segment": KEYWORD, "step_number": LONG,
     "step": KEYWORD, "sessions": LONG, "previous_step_sessions": LONG, "from_previous": DOUBLE,
     "from_start": DOUBLE, "segment_sessions": LONG},
)
# Final only: the day's people and bots (the one served table that counts bots).
BOTS = IndexSpec(
    "clickstream-bots", "bot_traffic", ("event_date", "visitor", "bot_reason", "browser"),
    {"event_date": DATE, "visitor": KEYWORD, "bot_reason": KEYWORD, "browser": KEYWORD,
     "events": LONG, "users": LONG, "sessions": LONG},
)
# Every window of a day, overall and per country, scored; anomalies flagged. An open day's windows
# are scored live as they fill (live/anomalies.py), a closed day's by its final recompute.
ANOMALIES = IndexSpec(
    "clickstream-anomalies", "traffic_anomalies", ("window_start", "dimension", "segment"),
    {"event_date": DATE, "window_start": DATE, "window_end": DATE, "dimension": KEYWORD,
     "segment": KEYWORD, "sessions": LONG, "baseline": DOUBLE, "spread": DOUBLE, "score": DOUBLE,
     "history_days": LONG, "is_anomaly": {"type": "boolean"}, "direction": KEYWORD},
)
SERVED = [URL_COUNTRY, URL_POPULARITY, SESSIONS, FUNNEL, BOTS, ANOMALIES]


class IndexingError(RuntimeError):
    """Some documents were rejected, the index does not hold what was sent, or a load would have
    replaced a served day with nothing. `retryable`: trying again may succeed (Elasticsearch was
    overloaded or failing), unlike documents it refuses or an empty day."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


@dataclass
class IndexReport:
    index: str  # the physical index that now serves the day
    documents: int
    replaced: list[str]  # indices that served the day before, dropped by the swap
    seconds: float
    superseded: int = 0  # live documents not written: the index holds a newer version of each

    @property
    def docs_per_s(self) -> int:
        return round(self.documents / self.seconds) if self.seconds else 0


def load_day(client: Elasticsearch, spec: IndexSpec, day: str, rows: pa.Table,
             materialization: str, *, replicas: int = 0, chunk_size: int = 2_000,
             threads: int = BULK_THREADS, allow_empty: bool = False) -> IndexReport:
    """Load one day's rows into a new index, verify its count, then swap the day's aliases to it
    and drop the old index in one atomic request. On any failure the old day keeps being served
    and the new index is deleted."""
    started = time.monotonic()
    alias = spec.index_for(day)
    serving = _serving_indices(client, alias)
    if rows.num_rows == 0 and not allow_empty:
        served = client.count(index=alias)["count"] if serving else 0
        if served:
            raise IndexingError(
                f"{spec.table} has 0 rows for {day}, but {alias} serves {served:,} documents: "
                "refusing to replace them with nothing. Check the day upstream; if it really is "
                "empty now, rerun with allow_empty_days: true in the index asset's config.")
    client.indices.put_index_template(name=spec.name, **spec.template(replicas))
    index = f"{alias}_{materialization[:8]}"
    if index in serving:  # a retried step of the same run, loading a day it already swapped in
        index += f"-{time.time_ns() // 1_000_000}"
    # Indices of the day behind no alias: loads that were killed before their swap. (A live
    # index made since `serving` was read is no leftover: the swap replaces it.)
    leftovers = [name for name in client.indices.get(index=f"{alias}_*", allow_no_indices=True)
                 if name not in serving and name != f"{alias}{LIVE_SUFFIX}"]
    delete_indices(client, leftovers)
    # Loading with refresh and replicas off, then on: each refresh during the load would only
    # make segments nobody may read yet.
    client.indices.create(index=index, settings={"refresh_interval": "-1", "number_of_replicas": 0})
    try:
        # Several bulk streams at once: one prepares and serializes a chunk while Elasticsearch
        # indexes another's, instead of each waiting for the other.
        step = max(1, -(-rows.num_rows // threads))
        slices = [rows.slice(start, step) for start in range(0, rows.num_rows, step)] or [rows]
        with ThreadPoolExecutor(len(slices), thread_name_prefix="bulk") as pool:
            results = list(pool.map(lambda part: _bulk(client, _actions(
                spec, index, part, materialization, chunk_size), chunk_size), slices))
        sent = sum(count for count, _ in results)
        failures = [failure for _, failed in results for failure in failed]
        if failures:
            raise _rejected(failures, sent, index, "documents")
        client.indices.put_settings(index=index, settings={
            "refresh_interval": REFRESH_INTERVAL, "number_of_replicas": replicas})
        client.indices.refresh(index=index)
        count = client.count(index=index)["count"]
        if count != sent:
            raise IndexingError(f"{index} holds {count} documents after indexing {sent}; "
                                f"{alias} still serves the previous load.", retryable=True)
        serving = _serving_indices(client, alias)  # again: a live refresh may have begun the day
        client.indices.update_aliases(actions=[
            {"add": {"index": index, "alias": spec.alias}},
            {"add": {"index": index, "alias": alias}},
            *({"remove_index": {"index": old}} for old in serving)])
    except BaseException:
        # If Elasticsearch itself is gone, the next load of the day deletes the index instead;
        # if the alias request took effect after all (a timed-out answer), the index stays.
        with contextlib.suppress(Exception):
            if index not in _serving_indices(client, alias):
                client.options(ignore_status=404).indices.delete(index=index)
        raise
    return IndexReport(index, sent, serving, time.monotonic() - started)


def write_live(client: Elasticsearch, spec: IndexSpec, day: str, documents: dict[str, dict],
               *, landing_created_s: int = 0, replicas: int = 0, chunk_size: int = 2_000
               ) -> IndexReport:
    """Write an open day's refreshed documents (id -> source) over their earlier versions and make
    them searchable now. Other documents of the day stay: the refresh touched only these.

    A document's version is its landing table's creation time, then its landing version: of two
    refreshes that overlap, the one that includes more landing commits wins, whatever the order
    of their writes, and a landing table recreated since outranks the old one. The other writes
    are superseded, not failed."""
    started = time.monotonic()
    index = ensure_index(client, spec, day, replicas)
    actions = ({"_op_type": "index", "_index": index, "_id": doc_id, "_source": doc,
                "version": live_version(landing_created_s, doc["landing_version"]),
                "version_type": "external_gte"}
               for doc_id, doc in documents.items())
    sent, failures = _bulk(client, actions, chunk_size)
    rejected = [f for f in failures if next(iter(f.values())).get("status") != 409]
    if rejected:
        raise _rejected(rejected, sent, index, "live documents")
    client.indices.refresh(index=index)  # searchable now, not at the next 30 s refresh
    return IndexReport(index, sent, [], time.monotonic() - started,
                       superseded=len(failures) - len(rejected))


def live_version(landing_created_s: int, landing_version: int) -> int:
    """A live document's Elasticsearch version: a long, at least 1, ordered by table then commit."""
    return landing_created_s * 10**9 + landing_version + 1


def served_documents(client: Elasticsearch, spec: IndexSpec, days: list[str]) -> dict[str, int]:
    """Documents each day's alias serves; 0 for a day with no alias yet."""
    return {day: client.count(index=spec.index_for(day), ignore_unavailable=True)["count"]
            for day in days}


def expire_days(client: Elasticsearch, spec: IndexSpec, before: date) -> list[str]:
    """Delete the family's day indices (final loads, live ones, and any a killed load left) of the
    days before `before`; returns the indices deleted. Works on any cluster, with or without index
    lifecycle management."""
    day_of = re.compile(rf"^{re.escape(spec.name)}-(\d{{4}})\.(\d{{2}})\.(\d{{2}})(_.+)?$")
    expired = sorted(name for name in client.indices.get(index=f"{spec.name}-*",
                                                         allow_no_indices=True)
                     if (found := day_of.match(name)) and date(*map(int, found.groups()[:3])) < before)
    delete_indices(client, expired)
    return expired


def delete_indices(client: Elasticsearch, names: list[str]) -> None:
    """Delete the named indices, many to a request: by name, since clusters that require names
    refuse a wildcard, and in bounded requests, since the names travel in the request line."""
    for first in range(0, len(names), DELETED_PER_REQUEST):
        client.indices.delete(index=",".join(names[first:first + DELETED_PER_REQUEST]))


def ensure_index(client: Elasticsearch, spec: IndexSpec, day: str, replicas: int) -> str:
    """The day's alias, for the live path to write through; on a day nothing serves yet, a new
    index behind both aliases. Older indices gain new fields."""
    client.indices.put_index_template(name=spec.name, **spec.template(replicas))
    alias = spec.index_for(day)
    if client.indices.exists(index=alias):  # the day's alias, or an index from before aliases
        client.indices.put_mapping(index=alias, properties=spec.properties)
    else:
        try:
            client.indices.create(index=f"{alias}{LIVE_SUFFIX}", aliases={spec.alias: {}, alias: {}})
        except BadRequestError as exc:  # another refresh created it first
            if exc.error != "resource_already_exists_exception":
                raise
    return alias


def _serving_indices(client: Elasticsearch, alias: str) -> list[str]:
    """The indices behind a day's alias; a day index from before aliases is its own name."""
    found = client.options(ignore_status=404).indices.get_alias(name=alias)
    if found.meta.status != 404:
        return sorted(found.body)
    return [alias] if client.indices.exists(index=alias) else []


def _bulk(client: Elasticsearch, actions: Iterator[dict], chunk_size: int
          ) -> tuple[int, list[dict]]:
    """One bulk stream: (documents sent, rejected items)."""
    sent, failures = 0, []
    for ok, item in helpers.streaming_bulk(
        client, actions, chunk_size=chunk_size,
        max_retries=5, initial_backoff=1, max_backoff=30,  # 429s are retried item by item
        raise_on_error=False, raise_on_exception=False,
    ):
        sent += 1
        if not ok:
            failures.append(item)
    return sent, failures


def _actions(spec: IndexSpec, index: str, rows: pa.Table, materialization: str, chunk_size: int
             ) -> Iterator[dict]:
    """A final load's index actions, one per row."""
    # Python objects only for one chunk at a time: a 10M-event day's 1.3M sessions as dicts held
    # GiBs more than the Arrow table they come from.
    fields = [name for name in rows.column_names if name in spec.fields]
    for chunk in rows.select(fields).to_batches(max_chunksize=chunk_size):
        for row in chunk.to_pylist():
            doc = {k: json_value(v) for k, v in row.items()}
            doc["materialization"] = materialization
            doc["final"] = True
            yield {"_op_type": "index", "_index": index, "_id": spec.doc_id(doc), "_source": doc}


def json_value(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _rejected(failures: list[dict], sent: int, index: str, what: str) -> IndexingError:
    shown = "\n".join(f"  {_describe(f)}" for f in failures[:FAILURES_SHOWN])
    statuses = [next(iter(f.values())).get("status") for f in failures]
    # 429 and 5xx outlasted the bulk helper's own retries: a later attempt may pass. A 4xx is the
    # documents themselves (a mapping conflict), and fails the same way every time.
    transient = all(isinstance(s, int) and (s == 429 or s >= 500) for s in statuses)
    return IndexingError(f"{len(failures)} of {sent} {what} were rejected by {index}:\n{shown}",
                         retryable=transient)


def _describe(failure: dict) -> str:
    op = next(iter(failure.values()))
    error = op.get("error", {})
    reason = error.get("reason", error) if isinstance(error, dict) else error
    return f"id={op.get('_id')} status={op.get('status')}: {reason}"
