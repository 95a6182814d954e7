"""The producer against the real broker: exact delivery, per-user order, clear failures, Ctrl-C."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime

import orjson
import pytest

from config.settings import child_env
from simulator.producer import GeneratorError, produce, write_jsonl
from simulator.timeline import GeneratorConfig
from tests.helpers import consume_all, free_port

CONFIG = GeneratorConfig(events=20_000, seed=5, start=datetime(2026, 4, 1, tzinfo=UTC))


def _cli(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "cli", *args],
                          env=child_env(**(env or {})), capture_output=True, text=True, **kwargs)


@pytest.mark.parametrize("workers", [1, 2])
def test_every_event_arrives_exactly_once_in_per_user_order(stack, fresh_topic, tmp_path, workers):
    summary = produce(CONFIG, stack, topic=fresh_topic, workers=workers, progress=False)
    assert (summary.delivered, summary.failed) == (CONFIG.events, 0)

    messages = consume_all(stack.kafka_bootstrap_servers, fresh_topic, CONFIG.events)
    assert len(messages) == CONFIG.events
    per_user: dict[bytes, list] = defaultdict(list)
    partitions_of: dict[bytes, set] = defaultdict(set)
    for msg in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        event = orjson.loads(msg.value())
        assert msg.key() == event["user"]["user_id"].encode()
        per_user[msg.key()].append(event["event_ts"])
        partitions_of[msg.key()].add(msg.partition())
    assert all(len(p) == 1 for p in partitions_of.values())  # keyed: one partition per user
    assert all(stamps == sorted(stamps) for stamps in per_user.values())

    # Identical event content whether it goes to Kafka or to a file.
    jsonl = tmp_path / "events.jsonl"
    write_jsonl(CONFIG, jsonl, progress=False)
    assert sorted(jsonl.read_bytes().splitlines()) == sorted(m.value() for m in messages)


def test_unreachable_broker_fails_fast_with_a_clear_message(stack):
    port = free_port()  # nothing listens here
    started = time.monotonic()
    proc = _cli("generate", "--events", "10", "--quiet",
                env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}, timeout=120)
    assert proc.returncode == 2
    assert f"Cannot reach Kafka at 127.0.0.1:{port}" in proc.stderr
    assert "clickstream stack up" in proc.stderr
    assert time.monotonic() - started < 60  # bounded: it gives up instead of retrying forever


def test_missing_topic_is_a_clear_error(stack):
    with pytest.raises(GeneratorError, match="does not exist"):
        produce(dataclasses.replace(CONFIG, events=10), stack, topic="no-such-topic", progress=False)


def test_ctrl_c_flushes_what_was_produced_and_prints_the_summary(stack, fresh_topic):
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "generate", "--events", "0",
         "--rate", "400", "--topic", fresh_topic, "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    time.sleep(6)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, err
    assert "(interrupted)" in out
    delivered = int(out.split("delivered")[1].split()[0].replace(",", ""))
    assert delivered > 100
    assert "failed 0" in out
    assert len(consume_all(stack.kafka_bootstrap_servers, fresh_topic, delivered)) == delivered


def test_real_time_mode_stamps_events_with_the_current_time(stack, fresh_topic):
    before = datetime.now(UTC)
    summary = produce(dataclasses.replace(CONFIG, events=300), stack, topic=fresh_topic,
                      rate=200, progress=False)
    after = datetime.now(UTC)
    assert summary.delivered == 300
    for msg in consume_all(stack.kafka_bootstrap_servers, fresh_topic, 300):
        ts = datetime.fromisoformat(orjson.loads(msg.value())["event_ts"].replace("Z", "+00:00"))
        assert before.replace(microsecond=0) <= ts <= after
