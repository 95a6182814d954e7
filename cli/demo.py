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
from spark.delta_lake import read_days
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
    print("3/3 report from Elasticsearch and the lake", flush=True)
    resources = sandbox.resources()
    every_day = [(start + timedelta(days=n)).date().isoformat() for n in range(days)]
    return "\n".join([report(resources["elasticsearch"].client(), first, last),
                      bot_report(resources["spark"].get_session(), resources["lake"].raw, every_day)])


def bot_report(spark, raw: str, days: list[str]) -> str:
    """Bots are in the lake only: their share of the days' events, by how they were found."""
    rows = read_days(spark, raw, days).groupBy("bot_reason").count().collect()
    counts = {row["bot_reason"]: row["count"] for row in rows}
    total, people = sum(counts.values()), counts.pop(None, 0)
    found = ", ".join(f"{n:,} by {reason.replace('_', ' ')}" for reason, n in sorted(counts.items()))
    return (f"Bots: {total - people:,} of {total:,} events ({(total - people) / max(total, 1):.2%}; "
            f"{found or 'none'}), in the lake only")


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
    channels = client.search(index=sessions, size=0, aggs={"channel": {
        "terms": {"field": "channel", "size": 10},
        "aggs": {"converted": {"filter": {"term": {"converted": True}}}}}})
    by_channel = ", ".join(
        f"{b['key']} {b['converted']['doc_count'] / b['doc_count']:.1%} of {b['doc_count']:,}"
        for b in channels["aggregations"]["channel"]["buckets"])
    lines += [f"Sessions: {total:,} ({per_day})",
              f"Conversion: {converted:,} sessions purchased = {converted / max(total, 1):.2%}",
              f"Conversion by first-touch channel: {by_channel}",
              f"Session duration: median {duration['50.0']:.0f} s, p95 {duration['95.0']:.0f} s"]
    return "\n".join(lines)
