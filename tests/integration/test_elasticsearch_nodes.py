"""Two Elasticsearch nodes on loopback (`CLICKSTREAM_ES_NODES=2`), every served index with one
replica. The node holding a full load's new index is SIGKILLed in the middle of the load: readers
of the day never see a half-loaded index, and once the supervisor has the node back, the day
serves exactly the table."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from datetime import date

import pyarrow as pa
import pytest
from elasticsearch import ApiError, TransportError

from clickstream_dagster.serving.indices import URL_COUNTRY, load_day
from config.clients import elasticsearch_client
from stack import elasticsearch, manager
from stack.process import read_pid_file
from tests.helpers import free_port, services_of_their_own, wait_until

ROWS = 150_000
DAY = "2026-11-30"


@pytest.fixture(scope="module")
def nodes(stack):
    # Under the stack's state folder: as root, Elasticsearch's unprivileged user must reach it.
    port = free_port(pairs=2, also=(100, 101))
    with services_of_their_own(
            stack, stack.state_dir / f"test-es-nodes-{uuid.uuid4().hex[:8]}",
            elasticsearch_nodes=2, elasticsearch_heap="512m",
            elasticsearch_url=f"http://127.0.0.1:{port},http://127.0.0.1:{port + 1}") as settings:
        yield settings


def _url_country_table() -> pa.Table:
    """A day of url_country_daily as the index asset reads it from the lake."""
    return pa.table({
        "event_date": pa.array([date.fromisoformat(DAY)] * ROWS, pa.date32()),
        "url": [f"https://shop.example/p/{n // 50}" for n in range(ROWS)],
        "country": [f"C{n % 50:02d}" for n in range(ROWS)],
        "events": pa.array(range(ROWS), pa.int64()),
        "page_views": pa.array([1] * ROWS, pa.int64()),
        "unique_users": pa.array([1] * ROWS, pa.int64()),
        "sessions": pa.array([1] * ROWS, pa.int64()),
        "avg_time_on_page_s": pa.array([1.5] * ROWS, pa.float64()),
    })


def _watch(client, alias: str, seen: list[int], stop: threading.Event) -> None:
    """What a reader of the day counts, as often as it can, until `stop`."""
    while not stop.is_set():
        # No master for a moment: a reader sees an error, never a partial day.
        with contextlib.suppress(ApiError, TransportError):
            seen.append(client.options(request_timeout=2).count(index=alias)["count"])
        time.sleep(0.05)


def test_a_node_killed_during_a_full_load_never_shows_a_partial_day(nodes):
    client = elasticsearch_client(nodes)
    spec = URL_COUNTRY.with_prefix(f"test-nodes-{uuid.uuid4().hex[:8]}")
    alias, rows = spec.index_for(DAY), _url_country_table()
    first = load_day(client, spec, DAY, rows, "first-load", replicas=nodes.index_replicas)
    client.cluster.health(index=first.index, wait_for_status="green", timeout="60s")
    assert client.indices.get_settings(index=first.index)[first.index]["settings"]["index"][
        "number_of_replicas"] == "1"

    seen: list[int] = []
    stop = threading.Event()
    reader = threading.Thread(target=_watch, args=(client, alias, seen, stop))
    reader.start()
    outcome: list = []

    def reload() -> None:
        try:
            outcome.append(load_day(client, spec, DAY, rows, "second-load", replicas=1))
        except Exception as exc:  # the asset's run fails, and its retry loads the day again
            outcome.append(exc)
    loader = threading.Thread(target=reload)
    loader.start()
    new_index = f"{alias}_second-l"

    def filling() -> bool:  # not searchable yet: the load refreshes only at its end
        stats = client.options(ignore_status=404).indices.stats(index=new_index, metric="indexing")
        return stats.get("_all", {}).get("primaries", {}).get("indexing", {}).get(
            "index_total", 0) > ROWS // 10
    wait_until(filling, 60, "the new index to fill")
    holder = client.cat.shards(index=new_index, format="json", h="node,prirep")
    node = next(s["node"] for s in holder if s["prirep"] == "p")  # clickstream-1 or -2
    name = elasticsearch.node_name(int(node.rsplit("-", 1)[1]))
    restarts = {s.name: s for s in manager.status(nodes)}[name].restarts
    os.killpg(read_pid_file(nodes.state_dir, name).pid, signal.SIGKILL)
    assert loader.is_alive(), "the load ended before the kill"
    loader.join(300)

    def back() -> bool:
        status = {s.name: s for s in manager.status(nodes)}[name]
        return status.state == "running" and status.restarts == restarts + 1
    wait_until(back, 180, f"the supervisor to start {name} again")
    client.cluster.health(wait_for_status="green", timeout="120s")
    if isinstance(outcome[0], Exception):  # as the run's retry does
        load_day(client, spec, DAY, rows, "retried-load", replicas=1)
    stop.set()
    reader.join(30)

    assert seen and set(seen) == {ROWS}, f"a reader counted {sorted(set(seen))[:5]}"
    served = client.indices.get_alias(name=alias)
    assert len(served) == 1 and client.count(index=alias)["count"] == ROWS
