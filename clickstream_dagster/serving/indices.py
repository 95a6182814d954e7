"""Elasticsearch indices for the served tables: templates with explicit mappings, one index per
day behind an alias, deterministic document ids, bulk loading that fails loudly."""

import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime

import pyarrow as pa
from elasticsearch import Elasticsearch, helpers

KEYWORD = {"type": "keyword"}
LONG = {"type": "long"}
DOUBLE = {"type": "double"}
DATE = {"type": "date"}
MAX_ID_BYTES = 512  # Elasticsearch's limit on _id
FAILURES_SHOWN = 20
BULK_THREADS = 2


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
        return f"{self.name}-{date.fromisoformat(day):%Y.%m.%d}"

    def template(self, replicas: int) -> dict:
        return {
            "index_patterns": [f"{self.name}-*"],
            "template": {
                "settings": {"number_of_shards": 1, "number_of_replicas": replicas,
                             "refresh_interval": "30s"},
                # Strict: a column the mapping does not know is an error, never a guessed type.
                "mappings": {"dynamic": "strict", "properties": self.properties},
                "aliases": {self.alias: {}},
            },
            "priority": 200,
            "_meta": {"managed_by": "clickstream_dagster"},
        }

    @property
    def properties(self) -> dict[str, dict]:
        # `final` tells a closed day's checked recompute from the live path's refreshes of an open
        # day; `materialization` names the run that wrote the document.
        return {**self.fields, "materialization": KEYWORD, "final": {"type": "boolean"}}

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
     "device_type": KEYWORD, "country": KEYWORD},
)
SERVED = [URL_COUNTRY, URL_POPULARITY, SESSIONS]


class IndexingError(RuntimeError):
    """Some documents were rejected, or the index does not hold what was sent."""


@dataclass
class IndexReport:
    index: str
    documents: int
    stale_removed: int
    seconds: float

    @property
    def docs_per_s(self) -> int:
        return round(self.documents / self.seconds) if self.seconds else 0


def load_day(client: Elasticsearch, spec: IndexSpec, day: str, rows: pa.Table,
             materialization: str, *, replicas: int = 0, chunk_size: int = 2_000,
             threads: int = BULK_THREADS) -> IndexReport:
    """Index one day's rows, replace what an earlier run left, and verify the count."""
    started = time.monotonic()
    index = ensure_index(client, spec, day, replicas)
    # Several bulk streams at once: one prepares and serializes a chunk while Elasticsearch
    # indexes another's, instead of each waiting for the other.
    step = max(1, -(-rows.num_rows // threads))
    slices = [rows.slice(start, step) for start in range(0, rows.num_rows, step)] or [rows]
    with ThreadPoolExecutor(len(slices), thread_name_prefix="bulk") as pool:
        results = list(pool.map(lambda part: _bulk(client, spec, index, part, materialization,
                                                   chunk_size, final=True), slices))
    sent = sum(count for count, _ in results)
    failures = [failure for _, failed in results for failure in failed]
    if failures:
        raise _rejected(failures, sent, index, "documents")
    client.indices.refresh(index=index)
    stale = _remove_stale(client, index, materialization)
    count = client.count(index=index)["count"]
    if count != sent:
        raise IndexingError(f"{index} holds {count} documents after indexing {sent}.")
    return IndexReport(index, sent, stale, time.monotonic() - started)


def upsert_live(client: Elasticsearch, spec: IndexSpec, day: str, rows: pa.Table,
                materialization: str, *, replicas: int = 0, chunk_size: int = 2_000) -> IndexReport:
    """Write an open day's refreshed documents over their earlier versions, marked not final, and
    make them searchable now. Other documents of the day stay: the refresh touched only them."""
    started = time.monotonic()
    index = ensure_index(client, spec, day, replicas)
    sent, failures = _bulk(client, spec, index, rows, materialization, chunk_size, final=False)
    if failures:
        raise _rejected(failures, sent, index, "live documents")
    client.indices.refresh(index=index)  # searchable now, not at the next 30 s refresh
    return IndexReport(index, sent, 0, time.monotonic() - started)


def ensure_index(client: Elasticsearch, spec: IndexSpec, day: str, replicas: int) -> str:
    """The day's index, created from the current template; an older index gains new fields."""
    client.indices.put_index_template(name=spec.name, **spec.template(replicas))
    index = spec.index_for(day)
    if client.indices.exists(index=index):
        client.indices.put_mapping(index=index, properties=spec.properties)
    else:
        client.indices.create(index=index)  # settings, mappings and alias come from the template
    return index


def _bulk(client: Elasticsearch, spec: IndexSpec, index: str, rows: pa.Table,
          materialization: str, chunk_size: int, final: bool) -> tuple[int, list[dict]]:
    """One bulk stream: (documents sent, rejected items)."""
    sent, failures = 0, []
    for ok, item in helpers.streaming_bulk(
        client, _actions(spec, index, rows, materialization, chunk_size, final),
        chunk_size=chunk_size,
        max_retries=5, initial_backoff=1, max_backoff=30,  # 429s are retried item by item
        raise_on_error=False, raise_on_exception=False,
    ):
        sent += 1
        if not ok:
            failures.append(item)
    return sent, failures


def _remove_stale(client: Elasticsearch, index: str, materialization: str) -> int:
    """Delete documents an earlier materialization wrote and this one did not (rows that no longer
    exist). Scan + bulk delete rather than _delete_by_query, which not every distribution has."""
    stale = helpers.scan(client, index=index, _source=False, query={
        "query": {"bool": {"must_not": {"term": {"materialization": materialization}}}}})
    deleted, errors = helpers.bulk(
        client, ({"_op_type": "delete", "_index": index, "_id": hit["_id"]} for hit in stale),
        raise_on_error=False)
    if errors:
        raise IndexingError(f"could not remove stale documents from {index}: {errors[:5]}")
    client.indices.refresh(index=index)
    return deleted


def _actions(spec: IndexSpec, index: str, rows: pa.Table, materialization: str, chunk_size: int,
             final: bool) -> Iterator[dict]:
    # Python objects only for one chunk at a time: a 10M-event day's 1.3M sessions as dicts held
    # GiBs more than the Arrow table they come from.
    fields = [name for name in rows.column_names if name in spec.fields]
    for chunk in rows.select(fields).to_batches(max_chunksize=chunk_size):
        for row in chunk.to_pylist():
            doc = {k: _json_value(v) for k, v in row.items()}
            doc["materialization"] = materialization
            doc["final"] = final
            yield {"_op_type": "index", "_index": index, "_id": spec.doc_id(doc), "_source": doc}


def _json_value(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _rejected(failures: list[dict], sent: int, index: str, what: str) -> IndexingError:
    shown = "\n".join(f"  {_describe(f)}" for f in failures[:FAILURES_SHOWN])
    return IndexingError(f"{len(failures)} of {sent} {what} were rejected by {index}:\n{shown}")


def _describe(failure: dict) -> str:
    op = next(iter(failure.values()))
    error = op.get("error", {})
    reason = error.get("reason", error) if isinstance(error, dict) else error
    return f"id={op.get('_id')} status={op.get('status')}: {reason}"
