"""`bench live`'s per-minute figures: micro-batches and CPU fall in the minute they belong to."""

import subprocess
import sys
import time
from datetime import UTC, datetime

from bench.live import CpuMeter, LiveRun, Probe, Sample, _minute_line, _resolve, _stop, _window
from config.settings import Settings

START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()


def _batch(batch_id: int, landed_s: float, seconds: float, rows: int, offsets: tuple[int, int]) -> dict:
    landed = datetime.fromtimestamp(START + landed_s, UTC).isoformat(timespec="milliseconds")
    return {"batch_id": batch_id, "started_at": landed, "landed_at": landed, "seconds": seconds,
            "input_rows": rows, "start_offsets": {"0": offsets[0]}, "end_offsets": {"0": offsets[1]},
            "phase_seconds": {"read_parse_dedup": seconds / 2, "landing": seconds / 2}}


def _run() -> LiveRun:
    live = LiveRun(Settings(), rate=1000, minutes=2)
    for batch in (_batch(0, 10, 4.0, 10_000, (0, 10_000)), _batch(1, 20, 6.0, 10_000, (10_000, 20_000)),
                  _batch(2, 70, 11.0, 12_000, (20_000, 32_000))):
        live.batches[(batch["started_at"], batch["batch_id"])] = batch
    live.samples = [Sample(START + 1, 0, 1, 0, 0.5, 6.0, {"spark-connect": 0.4, "dagster": 0.1},
                           {"spark-connect": 4.0, "dagster": 2.0}),
                    Sample(START + 3, 0, 1, 0, 0.9, 6.5, {"spark-connect": 0.8, "dagster": 0.1},
                           {"spark-connect": 3.9, "dagster": 2.6}),
                    Sample(START + 61, 0, 1, 0, 0.2, 6.1, {"spark-connect": 0.2, "dagster": 0.0},
                           {"spark-connect": 4.1, "dagster": 2.0})]
    return live


def test_a_minute_counts_the_micro_batches_that_landed_in_it():
    live = _run()
    first, second = _window(live, START, START + 60), _window(live, START + 60, START + 120)
    assert first["micro_batches"] == {"count": 2, "input_rows": 20_000, "p50_s": 5.0, "max_s": 6.0,
                                      "max_phase_s": {"read_parse_dedup": 3.0, "landing": 3.0}}
    assert second["micro_batches"]["count"] == 1 and second["micro_batches"]["max_s"] == 11.0


def test_cpu_is_averaged_per_process_over_the_minute():
    first = _window(_run(), START, START + 60)
    assert first["cpu_share"] == 0.7
    assert first["cpu_share_by_process"] == {"spark-connect": 0.6, "dagster": 0.1}


def test_memory_peaks_per_process_within_the_minute_not_at_the_same_sample():
    first = _window(_run(), START, START + 60)
    assert first["peak_rss_gib"] == 6.5
    assert first["peak_rss_gib_by_process"] == {"spark-connect": 4.0, "dagster": 2.6}


def test_a_probe_lands_with_the_batch_whose_offsets_hold_it():
    # Already in Elasticsearch: the lake is all this call has to resolve.
    probe = Probe("e", "s", sent_at=START + 12, partition=0, offset=15_000, es_s=9.0)
    _resolve([probe], _run().batches.values(), client=None, sessions_alias="unused")
    assert probe.lake_s == 8.0


def test_a_minute_without_a_sample_is_reported_not_a_crash():
    # One sample's batch-log query outlasted a whole minute on a saturated server.
    line = _minute_line(_run(), START + 120, START + 180)
    assert "cpu -" in line and "micro-batches p50 - s" in line


def _probe(sent_s: float, es_s: float | None) -> Probe:
    return Probe("e", "s", START + sent_s, es_s=es_s)


def test_recovery_is_when_elasticsearch_keeps_up_again_first_and_for_good():
    from bench.kills import Kill, recovery

    kill = Kill("spark-connect", after_s=100, at=START + 100)
    probes = [_probe(95, 3.0),  # before the kill: not counted
              _probe(100, 80.0), _probe(105, None), _probe(110, 12.0),  # a fast one, then
              _probe(115, 45.0), _probe(120, 20.0), _probe(125, 4.0)]  # slow again, then for good
    result = recovery(kill, probes)
    assert result["back_after_s"] == 22.0  # the probe sent at 110 s arrived at 122 s
    assert result["for_good_after_s"] == 40.0  # the probe sent at 120 s arrived at 140 s
    assert (result["slowest_probe_s"], result["probes_never_served"]) == (80.0, 1)
    assert (result["baseline_p95_s"], result["back_to_baseline_after_s"]) == (3.0, 22.0)


def test_recovery_also_counts_from_the_latency_before_the_kill():
    from bench.kills import Kill, recovery

    kill = Kill("kafka", after_s=100, at=START + 100)
    probes = [_probe(50, 44.0), _probe(90, 40.0),  # the live path was this slow before
              _probe(100, 90.0), _probe(110, 42.0), _probe(120, 35.0)]
    result = recovery(kill, probes)
    assert result["back_after_s"] is None  # never within 30 s
    assert result["baseline_p95_s"] == 44.0
    assert result["back_to_baseline_after_s"] == 52.0  # the probe sent at 110 s, in at 152 s


def test_bench_kill_targets_are_the_ones_the_cli_offers():
    from bench.kills import TARGETS
    from cli.main import KILL_TARGETS

    assert KILL_TARGETS == TARGETS


def test_the_cpu_meter_counts_a_restarted_service_under_its_new_pid():
    meter = CpuMeter({})  # the killed server: its tree is gone
    busy = subprocess.Popen([sys.executable, "-c",
                             "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])
    try:
        meter.follow({"spark-connect": busy.pid})
        time.sleep(1)
        shares = meter.shares()
    finally:
        busy.kill()
        busy.wait()
    assert shares["spark-connect"] > 0


def test_stopping_a_child_waits_for_all_of_its_process_group(tmp_path):
    """`dagster dev` exits before the runs it launched: the benchmark must not go on (and reset the
    topics) while one of them still writes."""
    marker = tmp_path / "run-stopped"
    run = ("import signal, sys, time, pathlib\n"
           "def stop(*_):\n"
           "    time.sleep(1.5)\n"
           f"    pathlib.Path({str(marker)!r}).touch()\n"
           "    sys.exit(0)\n"
           "signal.signal(signal.SIGINT, stop)\n"
           "time.sleep(60)\n")
    # The leader exits at once on SIGINT; the run it started takes 1.5 s to stop.
    leader = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys, time\n"
                               f"subprocess.Popen([sys.executable, '-c', {run!r}])\n"
                               "time.sleep(60)\n"],
        start_new_session=True)
    time.sleep(1.0)  # the run has set its handler
    _stop(leader, grace_s=10)
    assert leader.poll() is not None and marker.exists()



def test_the_runs_beside_the_ingest_are_listed_in_minutes_from_the_start():
    import dagster as dg

    from bench.live import _other_runs

    instance = dg.DagsterInstance.ephemeral()
    for job, partition in (("ingest_job", None), ("daily_job", "2026-11-29")):
        tags = {"dagster/partition": partition} if partition else {}
        instance.add_run(dg.DagsterRun(job_name=job, run_id=f"run-{job}", tags=tags,
                                       status=dg.DagsterRunStatus.NOT_STARTED))
    runs = _other_runs(instance, start=time.time() - 90)
    assert [(r["job"], r["partition"], r["status"], r["started_min"]) for r in runs] == [
        ("daily_job", "2026-11-29", "NOT_STARTED", None)]
    assert 1.4 < runs[0]["requested_min"] < 2.0


def test_the_report_says_which_runs_were_still_in_flight_when_the_measurement_ended():
    from bench.live import markdown

    live = _run()
    results = {"rate_per_s": 1000, "minutes": 2, "overall": _window(live, START, START + 120),
               "backlog_ingest_run": {"events": 10_000, "request_to_refreshed_s": 9.0,
                                      "start_to_refreshed_s": 7.0},
               "other_runs": [
                   {"job": "daily_job", "partition": "2026-11-29", "status": "STARTED",
                    "requested_min": 0.5, "started_min": 0.6, "ended_min": None},
                   {"job": "retention_job", "partition": None, "status": "QUEUED",
                    "requested_min": 1.5, "started_min": None, "ended_min": None}]}
    results["overall"]["ingest_run_s"] = {"runs": 0}
    text = markdown(results)
    assert "daily_job 2026-11-29 (started): requested at minute 0.5, ran from minute 0.6 to the end" in text
    assert "retention_job (queued): requested at minute 1.5, never started." in text
    assert "Peak memory by process: spark-connect 4.1 GiB, dagster 2.6 GiB." in text
