"""`clickstream demo`: the whole pipeline, bounded, on three days of generated traffic, then a
short report read back from Elasticsearch. It uses topics, a lake and indices of its own, so it
never mixes with `make run`'s live data, and every run starts from scratch."""

import dataclasses
import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from .assets.analytics import ANALYTICS_ASSETS
from .assets.ingest import clickstream_landing
from .assets.lake import raw_clickstream
from .assets.serving import SERVING_ASSETS
from .checks.quality import QUALITY_CHECKS
from .clients import kafka_admin
from .definitions import build_resources
from .generator.producer import produce
from .generator.timeline import GeneratorConfig
from .resources import ElasticsearchResource
from .serving.indices import SESSIONS, URL_COUNTRY
from .settings import Settings
from .stack import kafka, manager

DEMO = "clickstream-demo"


def run_demo(settings: Settings, events: int, days: int = 3) -> str:
    manager.up(settings)
    demo = dataclasses.replace(settings, topic=DEMO, dlq_topic=f"{DEMO}.dlq",
                               lake_dir=str(Path(settings.lake_dir).with_name("demo-lake")))
    _reset(demo)
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days)
    config = GeneratorConfig(events=events, seed=2026, start=start, days=days,
                             duplicate_ratio=0.01, late_ratio=0.01, max_lateness_s=3 * 3600,
                             malformed_ratio=0.005)
    print(f"1/3 generating {events:,} events over {days} days from {start:%Y-%m-%d}", flush=True)
    summary = produce(config, demo, workers=2, progress=True)
    print(summary.render(), flush=True)

    resources = build_resources(demo)
    resources["elasticsearch"] = ElasticsearchResource(url=demo.elasticsearch_url, index_prefix=DEMO)
    instance = dg.DagsterInstance.get() if _has_dagster_home() else dg.DagsterInstance.ephemeral()
    print("2/3 ingest, compaction, analytics, quality gates and indexing", flush=True)
    started = time.monotonic()
    _materialize([clickstream_landing], resources, instance, {})
    first, last = start.date().isoformat(), (start + timedelta(days=days - 1)).date().isoformat()
    _materialize([raw_clickstream, *ANALYTICS_ASSETS, *SERVING_ASSETS, *QUALITY_CHECKS], resources,
                 instance, {"dagster/asset_partition_range_start": first,
                            "dagster/asset_partition_range_end": last})
    print(f"   done in {time.monotonic() - started:.0f} s", flush=True)
    print("3/3 report from Elasticsearch", flush=True)
    return report(resources["elasticsearch"].client(), first, last)


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


def _materialize(assets, resources, instance, tags) -> None:
    result = dg.materialize(assets, resources=resources, instance=instance, tags=tags,
                            raise_on_error=False)
    if not result.success:
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        raise RuntimeError(f"demo run {result.run_id} failed" +
                           (f"; failed checks: {failed}" if failed else "; see the log above"))


def _reset(demo: Settings) -> None:
    """Start from scratch: new topics, empty lake, no demo indices."""
    metadata_topics = kafka_admin(demo).list_topics(timeout=10).topics
    existing = [t for t in (demo.topic, demo.dlq_topic) if t in metadata_topics]
    if existing:
        kafka.delete_topics(demo, existing)
        time.sleep(2)  # deletion completes asynchronously on the broker
    kafka.create_topics(demo, {demo.topic: demo.topic_partitions, demo.dlq_topic: 1})
    shutil.rmtree(demo.lake_dir, ignore_errors=True)
    client = ElasticsearchResource(url=demo.elasticsearch_url).client()
    for index in client.indices.get(index=f"{DEMO}-*", allow_no_indices=True):
        client.indices.delete(index=index)


def _has_dagster_home() -> bool:
    return bool(os.environ.get("DAGSTER_HOME"))
