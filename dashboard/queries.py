"""What the dashboard shows, read from the served indices: one function per panel, each returning
plain Python data. Every query goes through the family alias, filtered by day, so it reads an
open day's live documents and a closed day's final ones alike. An index not created yet reads as
no data, never as an error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from elasticsearch import Elasticsearch

from clickstream_dagster.serving.indices import (
    ANOMALIES,
    BOTS,
    FUNNEL,
    SESSIONS,
    URL_COUNTRY,
    URL_POPULARITY,
    IndexSpec,
)


@dataclass(frozen=True)
class Indices:
    """The served families under one index prefix (CLICKSTREAM_ES_INDEX_PREFIX)."""

    client: Elasticsearch
    prefix: str = "clickstream"

    def alias(self, spec: IndexSpec) -> str:
        return spec.with_prefix(self.prefix).alias

    def search(self, spec: IndexSpec, day: str | None = None, **body) -> dict:
        query = body.pop("query", {"match_all": {}})
        if day:
            query = {"bool": {"filter": [{"term": {"event_date": day}}, query]}}
        return self.client.search(index=self.alias(spec), ignore_unavailable=True,
                                  allow_no_indices=True, query=query, **body).body


def _buckets(result: dict, name: str) -> list[dict]:
    return result.get("aggregations", {}).get(name, {}).get("buckets", [])


def served_days(indices: Indices, limit: int = 31) -> list[str]:
    """Days with traffic served, newest first."""
    result = indices.search(URL_POPULARITY, size=0, aggs={"days": {
        "terms": {"field": "event_date", "size": limit, "order": {"_key": "desc"},
                  "format": "yyyy-MM-dd"}}})
    return [b["key_as_string"] for b in _buckets(result, "days")]


@dataclass(frozen=True)
class Freshness:
    newest_window_end: datetime | None  # the end of the newest 5-minute window served
    final_through: str | None  # the newest day whose documents are final (checked and complete)

    def describe(self, now: datetime | None = None) -> str:
        if self.newest_window_end is None:
            return "No traffic served yet."
        now = now or datetime.now(UTC)
        behind = max(0, int((now - self.newest_window_end).total_seconds()))
        final = f"final through {self.final_through}" if self.final_through else "no day final yet"
        return (f"Data as of {self.newest_window_end:%Y-%m-%d %H:%M} UTC "
                f"({_duration(behind)} ago); {final}.")


def freshness(indices: Indices) -> Freshness:
    newest = indices.search(URL_POPULARITY, size=0,
                            aggs={"newest": {"max": {"field": "window_end"}}})
    final = indices.search(SESSIONS, size=0, query={"term": {"final": True}},
                           aggs={"newest": {"max": {"field": "event_date", "format": "yyyy-MM-dd"}}})
    end = newest.get("aggregations", {}).get("newest", {}).get("value")
    final_day = final.get("aggregations", {}).get("newest", {}).get("value_as_string")
    return Freshness(datetime.fromtimestamp(end / 1000, UTC) if end else None, final_day)


def traffic(indices: Indices, day: str) -> list[tuple[datetime, int]]:
    """Events per 5-minute window of the day."""
    result = indices.search(URL_POPULARITY, day, size=0, aggs={"windows": {
        "date_histogram": {"field": "window_start", "fixed_interval": "5m"},
        "aggs": {"events": {"sum": {"field": "events"}}}}})
    return [(datetime.fromtimestamp(b["key"] / 1000, UTC), int(b["events"]["value"]))
            for b in _buckets(result, "windows")]


def anomalies(indices: Indices, day: str, limit: int = 500) -> list[dict]:
    """The day's anomalous windows, overall and per country, strongest first."""
    result = indices.search(ANOMALIES, day, size=limit, query={"term": {"is_anomaly": True}},
                            sort=[{"score": {"order": "desc"}}])
    return sorted((hit["_source"] for hit in result["hits"]["hits"]),
                  key=lambda a: -abs(a["score"] or 0))


def top_events(indices: Indices, day: str, field: str, size: int = 10) -> list[tuple[str, int]]:
    """The `field` values (url or country) with the most events on the day."""
    result = indices.search(URL_COUNTRY, day, size=0, aggs={"top": {
        "terms": {"field": field, "size": size, "order": {"events": "desc"}},
        "aggs": {"events": {"sum": {"field": "events"}}}}})
    return [(b["key"], int(b["events"]["value"])) for b in _buckets(result, "top")]


def sessions_by(indices: Indices, day: str, field: str, size: int = 8) -> list[tuple[str, int]]:
    """Sessions per value of a session field (device_class, browser) on the day."""
    result = indices.search(SESSIONS, day, size=0, aggs={"top": {
        "terms": {"field": field, "size": size, "missing": "unknown"}}})
    return [(b["key"], b["doc_count"]) for b in _buckets(result, "top")]


def funnel(indices: Indices, day: str) -> list[dict]:
    """The whole day's funnel, step by step (final days only)."""
    result = indices.search(FUNNEL, day, size=20, query={"term": {"dimension": "all"}},
                            sort=[{"step_number": {"order": "asc"}}])
    return [hit["_source"] for hit in result["hits"]["hits"]]


def bot_share(indices: Indices, day: str) -> dict[str, dict[str, int]]:
    """Events per visitor kind (person, bot), and the bots' events per browser (final days only)."""
    result = indices.search(BOTS, day, size=0, aggs={
        "visitor": {"terms": {"field": "visitor"}, "aggs": {"events": {"sum": {"field": "events"}}}},
        "bots": {"filter": {"term": {"visitor": "bot"}}, "aggs": {"browser": {
            "terms": {"field": "browser", "size": 10, "order": {"events": "desc"}},
            "aggs": {"events": {"sum": {"field": "events"}}}}}}})
    aggregations = result.get("aggregations", {})
    return {"visitors": {b["key"]: int(b["events"]["value"]) for b in _buckets(result, "visitor")},
            "bots": {b["key"]: int(b["events"]["value"])
                     for b in aggregations.get("bots", {}).get("browser", {}).get("buckets", [])}}


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"
