"""`clickstream stack`: real services, idempotent start, clean stop, clear errors."""

from __future__ import annotations

import dataclasses
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from config.clients import elasticsearch_client, kafka_admin
from config.settings import child_env
from spark.session import (
    SparkServerUnavailable,
    connect,
    naming_the_server,
    retry_policy,
    stop_session,
)
from stack import kafka, manager, spark_connect, supervisor
from stack.errors import StackError
from stack.process import port_is_open, read_pid_file
from stack.versions import ELASTICSEARCH_VERSION, KAFKA_VERSION
from tests.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_elasticsearch_is_real(stack):
    client = elasticsearch_client(stack)
    response = client.nodes.info(node_id="_local")
    node = next(iter(response["nodes"].values()))
    # The integ-test distribution leaves out the rest-root module that serves `GET /`, so the
    # version and build come from the nodes API; the product header is on every response.
    assert node["version"] == ELASTICSEARCH_VERSION
    assert len(node["build_hash"]) >= 7
    assert response.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    assert client.cluster.health()["status"] in ("yellow", "green")


def test_kafka_is_real_with_both_topics(stack):
    metadata = kafka_admin(stack).list_topics(timeout=10)
    brokers = [f"{b.host}:{b.port}" for b in metadata.brokers.values()]
    assert stack.kafka_bootstrap_servers in brokers
    assert len(metadata.topics[stack.topic].partitions) == stack.topic_partitions
    assert stack.dlq_topic in metadata.topics


def test_status_reports_versions_and_logs(stack):
    by_name = {s.name: s for s in manager.status(stack)}
    assert by_name["kafka"].state in ("running", "external")
    assert by_name["elasticsearch"].version == ELASTICSEARCH_VERSION
    if by_name["kafka"].state == "running":
        assert by_name["kafka"].version == KAFKA_VERSION
        assert os.path.exists(by_name["kafka"].log)
        assert by_name["kafka"].rss_mib > 50


def test_second_up_is_a_no_op(stack, capsys):
    before = {s.name: s.pid for s in manager.status(stack)}
    after = {s.name: s.pid for s in manager.up(stack)}
    assert after == before
    assert "starting" not in capsys.readouterr().out


def test_down_stops_only_what_up_started(stack, tmp_path):
    # A state folder that started nothing stops nothing, even with the same endpoints.
    assert manager.down(dataclasses.replace(stack, state_dir=tmp_path / "empty")) == []
    assert kafka.probe(stack) is not None

    port = free_port(pairs=2)  # broker and controller
    own = dataclasses.replace(
        stack, state_dir=tmp_path / "own", kafka_bootstrap_servers=f"127.0.0.1:{port}"
    )
    kafka.start(own)
    service = read_pid_file(own.state_dir, "kafka")
    assert service.is_alive() and port_is_open("127.0.0.1", port)

    assert manager.down(own) == ["kafka"]
    assert not service.is_alive()
    assert not port_is_open("127.0.0.1", port)
    assert kafka.probe(stack) is not None  # the main stack is untouched


@pytest.fixture
def foreign_http_server():
    """Something that is neither Kafka nor Elasticsearch, listening on a loopback port."""
    server = http.server.HTTPServer(("127.0.0.1", free_port(pairs=101)),
                                    http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_port_taken_by_foreign_process_is_a_clear_error(stack, tmp_path, foreign_http_server):
    port = foreign_http_server
    not_es = dataclasses.replace(
        stack, state_dir=tmp_path, elasticsearch_url=f"http://127.0.0.1:{port}"
    )
    with pytest.raises(StackError, match=rf"Port {port} .* not Elasticsearch"):
        manager.up(not_es)

    env = child_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", CLICKSTREAM_STATE_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "stack", "up"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert f"Port {port} on 127.0.0.1 is taken" in proc.stderr
    assert "which is not Kafka" in proc.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS" in proc.stderr  # says what to change


def test_unreachable_remote_service_starts_nothing(stack, tmp_path):
    # An unresolvable name: nothing answers, and no traffic leaves the machine.
    remote = dataclasses.replace(
        stack, state_dir=tmp_path, kafka_bootstrap_servers="kafka.invalid:9092"
    )
    with pytest.raises(StackError, match="only starts services on 127.0.0.1"):
        manager.up(remote)
    assert not (tmp_path / "run").exists()


@pytest.mark.timeout(180)
def test_a_client_of_a_dead_spark_server_fails_within_its_retry_budget(stack):
    # pyspark's default policy would retry this call for at least ten minutes: past the timeout.
    address = f"127.0.0.1:{free_port()}"
    session = connect(f"sc://{address}", retry_s=5)
    try:
        with (pytest.raises(SparkServerUnavailable, match=f"sc://{address} did not answer for 5 s") as
              failed, naming_the_server(f"sc://{address}", 5)):
            session.range(1).collect()
    finally:
        stop_session(session)
    assert "Connection refused" in str(failed.value) and "clickstream stack up" in str(failed.value)


def test_the_retry_budget_bounds_the_waits_between_retries():
    policy = retry_policy(30)
    waits, wait = [], policy.initial_backoff
    for _ in range(policy.max_retries):
        waits.append(min(wait, policy.max_backoff))
        wait *= policy.backoff_multiplier
    assert 25_000 <= sum(waits) <= 30_000 and max(waits) == 5_000


@pytest.mark.timeout(300)
def test_a_dead_spark_server_is_started_again_and_stack_down_stops_it_for_good(stack, tmp_path):
    port = free_port()
    own = dataclasses.replace(stack, state_dir=tmp_path, spark_remote=f"sc://127.0.0.1:{port}")
    spark_connect.start(own)
    assert supervisor.ensure_running(own) is not None
    dead = read_pid_file(own.state_dir, spark_connect.NAME)
    before = connect(own.spark_remote, retry_s=10)
    assert before.range(2).count() == 2
    os.killpg(dead.pid, signal.SIGKILL)

    def restarted():
        now = {s.name: s for s in manager.status(own)}[spark_connect.NAME]
        return now.state == "running" and now.pid != dead.pid and now.restarts == 1
    wait_until(restarted, 120, "the supervisor to start the Spark Connect server again")
    # A session of the dead server fails naming the server; a new one works.
    with (pytest.raises(SparkServerUnavailable, match=f"{own.spark_remote} restarted"),
          naming_the_server(own.spark_remote, 10)):
        before.range(3).count()
    session = connect(own.spark_remote, retry_s=10)
    try:
        assert session.range(5).count() == 5
    finally:
        stop_session(session)
    log = (tmp_path / "logs" / "supervisor.log").read_text()
    assert f"Spark Connect died: pid {dead.pid} gone" in log and "healthy again" in log

    assert manager.down(own) == [supervisor.NAME, spark_connect.NAME]
    time.sleep(2 * supervisor.POLL_S)  # nothing left to start it again
    assert not port_is_open("127.0.0.1", port)


# Run as a program of its own: inside pytest's process the crash did not show, while a plain process
# with the same code lost some of its children (docs/operations.md, "The local stack").
BUSY_CLIENT_STARTS = """
import sys, tempfile, threading, time
from pathlib import Path
from spark.session import connect, stop_session
from stack.process import start_process

session = connect(sys.argv[1], 30)
stop, busy = threading.Event(), threading.Event()

def queries():
    while not stop.is_set():
        session.range(10).count()
        busy.set()

worker = threading.Thread(target=queries)
worker.start()
assert busy.wait(60), "the session answered no query"
state, services = Path(tempfile.mkdtemp()), []
for n in range(100):
    log = state / f"{n}.log"
    services.append((log, start_process(f"sleeper-{n}", ["sh", "-c", "echo ran; sleep 0.2",
                    f"sleeper-{n}"], state_dir=state, log=log, marker=f"sleeper-{n}")))
stop.set()
worker.join()
stop_session(session)
# A child that died before its exec never ran its program, so its log stays empty; whether it is
# still running when looked at depends on the machine's load, so that is not what counts.
deadline = time.monotonic() + 60
while any(service.is_alive() for _, service in services) and time.monotonic() < deadline:
    time.sleep(0.2)
print(f"died={sum(b'ran' not in log.read_bytes() for log, _ in services)}")
"""


def test_services_started_beside_a_busy_spark_client_all_start(stack):
    """The supervisor and the tests start services from processes whose Spark Connect session is
    at work on another thread; a child forked there could die before it ran its program."""
    result = subprocess.run([sys.executable, "-c", BUSY_CLIENT_STARTS, stack.spark_remote],
                            capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env=child_env(PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "died=0" in result.stdout.splitlines(), result.stdout[-500:]
