"""Smoke test of the benchmark harness on 10,000 events: it runs every stage on the real stack and
writes a results file whose counts agree with each other. Nothing here is timed: the numbers are
measurements for `make bench`, not pass/fail criteria."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from config.settings import child_env

EVENTS = 10_000
STAGES = ["produce", "ingest", "compact", "aggregate", "validate", "index", "end_to_end", "freshness"]


def test_bench_runs_every_stage_and_writes_consistent_results(stack, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "cli", "bench", "--events", str(EVENTS),
         "--freshness-rate", "300", "--freshness-seconds", "10", "--freshness-trigger", "3",
         "--results-dir", str(tmp_path),
         "--quiet"],
        env=child_env(), capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    latest = json.loads((tmp_path / "latest.json").read_text())
    (copy,) = tmp_path.glob("bench-*.json")
    assert json.loads(copy.read_text()) == latest
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stages = latest["stages"]
    assert sorted(stages) == sorted(STAGES)
    assert stages["produce"]["events"] == EVENTS
    # Every produced record is accounted for by ingest: landed, duplicate or dead letter.
    ingest = stages["ingest"]
    assert ingest["events"] == EVENTS
    assert ingest["rows_landed"] + ingest["duplicates_removed"] + ingest["dead_letters"] == EVENTS
    assert ingest["duplicates_removed"] > 0 and ingest["dead_letters"] > 0
    # One day, so compaction keeps exactly what landed, and every later stage read that day.
    for stage in ("compact", "aggregate", "validate", "index"):
        assert stages[stage]["events"] == ingest["rows_landed"], stage
        assert stages[stage]["seconds"] > 0
    assert stages["index"]["documents"] > 0
    assert stages["end_to_end"]["seconds"] >= sum(
        stages[s]["seconds"] for s in ("ingest", "compact", "aggregate", "validate", "index"))
    fresh = stages["freshness"]
    # No duplicates or malformed events in the freshness stream: every produced event is timed.
    assert fresh["events"] == fresh["produced"] == 3_000
    assert fresh["trigger"] == "3 seconds"
    assert 0 < fresh["lake"]["p50_s"] <= fresh["lake"]["p95_s"] <= fresh["lake"]["max_s"]
    for stage in STAGES:
        assert stages[stage]["peak_memory"]["stack_gib"] > 0, stage
    assert latest["stack_peak_memory"]["kafka_gib"] > 0
    assert latest["stack_peak_memory"]["elasticsearch_gib"] > 0
    assert latest["machine"]["cores"] == os.cpu_count()
    assert latest["machine"]["versions"]["pyspark"] == "4.0.0"
    # Below 10M events the seconds targets do not apply, and the file says so.
    assert latest["met"]["aggregate"] is None and latest["met"]["end_to_end"] is None
    assert "| end_to_end | 10,000 |" in completed.stdout
