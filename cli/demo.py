"""`clickstream demo`: the whole pipeline, bounded, on four days of generated traffic, then a
short report read back from Elasticsearch. The last day has a traffic spike and a drop, which the
anomaly detection finds against the days before it. The demo uses topics, a lake and indices of
its own, so it never mixes with `make run`'s live data, and every run starts from scratch;
`clickstream dashboard --index-prefix clickstream-demo` shows its indices."""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
from pyspark.sql import functions as F

from clickstream_dagster.serving.indices import ANOMALIES, FUNNEL, SESSIONS, URL_COUNTRY
from config.settings import Settings
from sandbox.pipeline import Sandbox
from simulator.producer import parse_shift, produce
from simulator.timeline import GeneratorConfig
from spark.delta_lake import read_days
from stack import manager

DEMO = "clickstream-demo"
# The last day's injected anomalies: four times the sessions for 15 minutes, then none for 30.
SHIFTS = ("14:00,15m,4", "19:00,30m,0")


def run_demo(settings: Settings, events: int, days: int = 4, name: str = DEMO) -> str:
    """Generate, ingest and process the days in the sandbox `name`; returns the report."""
    manager.up(settings)
    sandbox = Sandbox(name, settings)
    sandbox.reset()
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    last = start + timedelta(days=days - 1)
    config = GeneratorConfig(events=events, seed=2026, start=start, days=days,
                             duplicate_ratio=0.01, late_ratio=0.01, max_lateness_s=3 * 3600,
                             malformed_ratio=0.005,
                             shifts=tuple(parse_shift(shift, last) for shift in SHIFTS))
    print(f"1/3 generating {events:,} events over {days} days from {start:%Y-%m-%d}; on "
          f"{last:%Y-%m-%d} a spike and a drop ({', '.join(SHIFTS)})", flush=True)
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
    client = resources["elasticsearch"].client()
    return "\n".join([report(client, first, last, name),
                      bot_report(resources["spark"].get_session(), resources["lake"].raw, every_day),
                      funnel_report(client, last, name), anomaly_report(client, last, name),
                      f"Dashboard of these days: make dashboard PREFIX={name}"])


def funnel_report(client, day: str, prefix: str = DEMO) -> str:
    found = client.search(index=FUNNEL.with_prefix(prefix).alias, size=10, sort=["step_number"],
                          query={"bool": {"filter": [{"term": {"event_date": day}},
                                                     {"term": {"dimension": "all"}}]}})
    steps = " -> ".join(
        f"{s['step']} {s['sessions']:,}"
        + (f" ({s['from_previous']:.0%})" if s["from_previous"] is not None else "")
        for s in (hit["_source"] for hit in found["hits"]["hits"]))
    return f"Funnel on {day} (sessions, share of the step before): {steps}"


def anomaly_report(client, day: str, prefix: str = DEMO) -> str:
    found = client.search(index=ANOMALIES.with_prefix(prefix).alias, size=100, sort=["window_start"],
                          query={"bool": {"filter": [{"term": {"event_date": day}},
                                                     {"term": {"is_anomaly": True}}]}})
    windows = [hit["_source"] for hit in found["hits"]["hits"]]
    shown = 8
    listed = ", ".join(f"{w['direction']} {w['segment']} {w['window_start'][11:16]} "
                       f"({w['sessions']} sessions vs {w['baseline']:g})" for w in windows[:shown])
    more = f" and {len(windows) - shown} more" if len(windows) > shown else ""
    return f"Anomalies on {day}: {len(windows)} windows: {listed or 'none'}{more}"


def bot_report(spark, raw: str, days: list[str]) -> str:
    """Bots are in the lake only: their share of the days' events, by how they were found; and the
    events whose IP address looks up to another country than they declare."""
    rows = read_days(spark, raw, days).groupBy("bot_reason").agg(
        F.count(F.lit(1)).alias("count"),
        F.count_if(F.col("ip_country") != F.col("country")).alias("geo")).collect()
    geo = sum(row["geo"] for row in rows)
    counts = {row["bot_reason"]: row["count"] for row in rows}
    total, people = sum(counts.values()), counts.pop(None, 0)
    found = ", ".join(f"{n:,} by {reason.replace('_', ' ')}" for reason, n in sorted(counts.items()))
    return (f"Bots: {total - people:,} of {total:,} events ({(total - people) / max(total, 1):.2%}; "
            f"{found or 'none'}), in the lake only\n"
            f"IP country against declared country: {geo:,} events differ")


def report(client, first: str, last: str, prefix: str = DEMO) -> str:
    url_country = URL_COUNTRY.with_prefix(prefix).alias
    sessions = SESSIONS.with_prefix(prefix).alias
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
