"""`clickstream demo`: the whole pipeline, bounded, on three days of generated traffic, then a
short report read back from Elasticsearch. It uses topics, a lake and indices of its own, so it
never mixes with `make run`'s live data, and every run starts from scratch."""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from clickstream_dagster.serving.indices import SESSIONS, URL_COUNTRY
from clickstream_dagster.settings import Settings
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from stack import manager

from .sandbox import Sandbox

DEMO = "clickstream-demo"


def run_demo(settings: Settings, events: int, days: int = 3) -> str:
    manager.up(settings)
    sandbox = Sandbox(DEMO, settings)
    sandbox.reset()
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    config = GeneratorConfig(events=events, seed=2026, start=start, days=days,
                             duplicate_ratio=0.01, late_ratio=0.01, max_lateness_s=3 * 3600,
                             malformed_ratio=0.005)
    print(f"1/3 generating {events:,} events over {days} days from {start:%Y-%m-%d}", flush=True)
    summary = produce(config, sandbox.settings, workers=2, progress=True)
    print(summary.render(), flush=True)

    instance = dg.DagsterInstance.get() if settings.dagster_home else dg.DagsterInstance.ephemeral()
    print("2/3 ingest, compaction, analytics, quality gates and indexing", flush=True)
    started = time.monotonic()
    sandbox.ingest(instance)
    first, last = start.date().isoformat(), (start + timedelta(days=days - 1)).date().isoformat()
    sandbox.daily(instance, first, last)
    print(f"   done in {time.monotonic() - started:.0f} s", flush=True)
    print("3/3 report from Elasticsearch", flush=True)
    return report(sandbox.resources()["elasticsearch"].client(), first, last)


def report(client, first: str, last: str) -> str:
    url_country = URL_COUNTRY.with_prefix(DEMO).alias
    sessions = SESSIONS.with_prefix(DEMO).alias
    top = client.search(index=url_country, size=0, aggs={"country": {
        "terms": {"field": "country", "size": 5, "order": {"events": "desc"}},
        "aggs": {"events": {"sum": {"field": "events"}},
                 "url": {"terms": {"field": "url", "size": 3, "order": {"events": "desc"}},
                         "aggs": {"events": {"sum": {"field": "events"}}}}}}})
    lines = [f"Top pages per country, {first} to {last} (events):"]
    for country in top["aggregations"]["country"]["buckets"]:
        pages = ", ".join(f"{b['key'].removeprefix('https://shop.example.com')} {int(b['events']['value']):,}"
                          for b in country["url"]["buckets"])
        lines.append(f"  {country['key']}  {int(country['events']['value']):>9,}   {pages}")
    stats = client.search(index=sessions, size=0, track_total_hits=True, aggs={
        "converted": {"filter": {"term": {"converted": True}}},
        "duration": {"percentiles": {"field": "duration_s", "percents": [50, 95]}},
        "per_day": {"date_histogram": {"field": "event_date", "calendar_interval": "day"}}})
    total = stats["hits"]["total"]["value"]
    converted = stats["aggregations"]["converted"]["doc_count"]
    duration = stats["aggregations"]["duration"]["values"]
    per_day = ", ".join(f"{b['key_as_string'][:10]} {b['doc_count']:,}"
                        for b in stats["aggregations"]["per_day"]["buckets"])
    lines += [f"Sessions: {total:,} ({per_day})",
              f"Conversion: {converted:,} sessions purchased = {converted / max(total, 1):.2%}",
              f"Session duration: median {duration['50.0']:.0f} s, p95 {duration['95.0']:.0f} s"]
    return "\n".join(lines)
