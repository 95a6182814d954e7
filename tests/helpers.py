"""Small helpers shared by tests."""

import contextlib
import json
import random
import socket
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

from clickstream_dagster.serving.indices import delete_indices
from stack.kafka import create_topics, delete_topics  # noqa: F401 (re-exported)

# free_port's lowest candidate: above the ports that well-known services listen on.
LOWEST_PORT = 10_000


def free_port(pairs: int = 1, also: tuple[int, ...] = ()) -> int:
    """A loopback port p such that p .. p+pairs-1, and p+offset for each offset in `also`, are
    all free. They lie below the kernel's ephemeral range where it leaves room: a port in that
    range, free now, can be taken by any outgoing connection before the service binds it."""
    span = max(pairs - 1, *also, 0)
    first_ephemeral = _first_ephemeral_port()
    high = first_ephemeral if first_ephemeral - span > LOWEST_PORT else 65535
    for _ in range(200):
        port = random.randrange(LOWEST_PORT, high - span)
        if all(_is_free(p) for p in (port + i for i in (*range(pairs), *also))):
            return port
    raise RuntimeError(f"no free loopback port between {LOWEST_PORT} and {high}")


def _first_ephemeral_port() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 65535


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60) -> list:
    """Read a topic from the beginning until `expected` messages arrived (or the time is up)."""
    import time
    import uuid

    from confluent_kafka import Consumer

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=1.0):
                if msg.error() is None:
                    messages.append(msg)
        # Anything beyond `expected` would be a duplicate delivery: give it a moment to show up.
        messages.extend(m for m in consumer.consume(10_000, timeout=2.0) if m.error() is None)
    finally:
        consumer.close()
    return messages


def send_messages(settings, messages) -> None:
    """Produce generated messages (`key`, `value`) to the settings' topic, all acknowledged."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap_servers, "acks": "all"})
    for message in messages:
        producer.produce(settings.topic, key=message.key, value=message.value)
        producer.poll(0)
    assert producer.flush(30) == 0


def isolated_topics(settings):
    """Settings with a new, unique event topic and dead-letter topic name."""
    import dataclasses
    import uuid

    name = f"test-{uuid.uuid4().hex[:12]}"
    return dataclasses.replace(settings, topic=name, dlq_topic=f"{name}.dlq")



def queue_run(instance, request, job_name: str = "daily_job"):
    """Queue a sensor's run request as the daemon does: the run is created, then enqueued."""
    import uuid

    import dagster as dg
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    # A queued run names the code location it comes from: this project's, as the daemon records it.
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=InProcessCodeLocationOrigin(
                LoadableTargetOrigin(module_name="clickstream_dagster.definitions")),
            repository_name="__repository__"),
        job_name=job_name)
    tags = {**request.tags, "dagster/run_key": request.run_key}
    if request.partition_key:
        tags["dagster/partition"] = request.partition_key
    run = instance.add_run(dg.DagsterRun(job_name=job_name, run_id=str(uuid.uuid4()),
                                         status=dg.DagsterRunStatus.NOT_STARTED,
                                         remote_job_origin=origin, tags=tags))
    instance.report_dagster_event(dg.DagsterEvent(dg.DagsterEventType.RUN_ENQUEUED.value,
                                                  job_name=job_name), run_id=run.run_id)
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.QUEUED
    return run


def report_landing(instance, *days: str) -> None:
    """What an ingest run records: the daily partitions it changed."""
    import dagster as dg

    from clickstream_dagster.assets.ingest import clickstream_landing

    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=clickstream_landing.key,
        metadata={"changed_partitions": dg.MetadataValue.json(list(days))}))


def finish(instance, run, status) -> None:
    """Move a run on as its process would: started, succeeded or failed."""
    import dagster as dg

    event_type = {dg.DagsterRunStatus.STARTED: dg.DagsterEventType.RUN_START,
                  dg.DagsterRunStatus.SUCCESS: dg.DagsterEventType.RUN_SUCCESS,
                  dg.DagsterRunStatus.FAILURE: dg.DagsterEventType.RUN_FAILURE}[status]
    instance.report_dagster_event(dg.DagsterEvent(event_type.value, job_name=run.job_name),
                                  run_id=run.run_id)
    assert instance.get_run_by_id(run.run_id).status == status


def remove_indices(client, prefix: str, templates: list[str]) -> None:
    """A test's Elasticsearch clean-up: every index named `<prefix>-*`, then the given index
    templates."""
    delete_indices(client, list(client.indices.get(index=f"{prefix}-*", allow_no_indices=True)))
    for name in templates:
        client.options(ignore_status=404).indices.delete_index_template(name=name)


def environment_names() -> set[str]:
    """Every environment variable settings.py reads."""
    from config.settings import declarations

    return {declared.metadata["variable"] for declared in declarations()}


def set_field(event: dict, path: list[str], value) -> dict:
    """Set one field of a nested event, `path` naming it from the top; the value KeyError removes
    the field instead. Returns the event, changed in place."""
    *parents, leaf = path
    node = event
    for name in parents:
        node = node[name]
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value
    return event


def answers(url: str) -> bool:
    """True once an HTTP server answers at `url`."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def kill_spark_server(settings):
    """SIGKILL the Spark Connect server of `settings` (a test's own, under its own supervisor);
    returns a condition that holds once the supervisor has it running again."""
    import os
    import signal

    from stack import manager, spark_connect
    from stack.process import read_pid_file

    dead = read_pid_file(settings.state_dir, spark_connect.NAME)
    os.killpg(dead.pid, signal.SIGKILL)

    def restarted() -> bool:
        status = {s.name: s for s in manager.status(settings)}[spark_connect.NAME]
        return status.state == "running" and status.pid != dead.pid and status.restarts == 1
    return restarted


@contextlib.contextmanager
def webhook_server():
    """A local webhook for alert tests: yields its url and the JSON bodies POSTed to it."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the handler's required name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", received
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def topic_of_its_own(settings, partitions: int = 3):
    """A new, uniquely named topic on the cluster of `settings`, deleted afterwards."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    create_topics(settings, {name: partitions})
    try:
        yield name
    finally:
        delete_topics(settings, [name])


@contextlib.contextmanager
def services_of_their_own(stack, state_dir, **changes):
    """`stack up` on the suite's settings with `changes` and a state folder of their own: it
    starts what does not answer yet (the suite's other services serve the rest), under a
    supervisor of its own. Stopped, and the folder removed, afterwards."""
    import dataclasses
    import shutil

    from stack import manager

    settings = dataclasses.replace(stack, state_dir=state_dir, **changes)
    manager.up(settings)
    try:
        yield settings
    finally:
        manager.down(settings)
        shutil.rmtree(state_dir, ignore_errors=True)
