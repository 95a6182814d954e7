"""The benchmark's verdicts: which targets a run is judged against, by its size."""

from __future__ import annotations

from bench.report import markdown, verdicts


def _results(events: int, end_to_end_s: float) -> dict:
    stage = {"events": events, "seconds": 20.0, "events_per_s": 100_000,
             "peak_memory": {"stack_gib": 6.0}}
    stages = {name: dict(stage) for name in
              ("produce", "ingest", "compact", "aggregate", "validate", "index", "end_to_end")}
    stages["end_to_end"]["seconds"] = end_to_end_s
    stages["freshness"] = {"events": 1_000, "rate_per_s": 2_000, "lake": {"p50_s": 4.0, "p95_s": 9.5},
                           "peak_memory": {"stack_gib": 6.0}}
    return {"events": events, "stages": stages, "stack_peak_memory": {"stack_gib": 7.0},
            "started_at": "2026-11-30T00:00:00+00:00",
            "machine": {"cores": 2, "memory_gib": 23.5}}


def test_a_1m_run_is_judged_against_the_1m_end_to_end_target_only():
    assert verdicts(_results(1_000_000, 29.0))["end_to_end"] is True
    assert verdicts(_results(1_000_000, 31.0))["end_to_end"] is False
    # The other seconds targets hold for the full run only.
    assert verdicts(_results(1_000_000, 29.0))["aggregate"] is None


def test_a_full_run_is_judged_against_the_10m_targets():
    met = verdicts(_results(10_000_000, 179.0))
    assert met["end_to_end"] is True and met["aggregate"] is True
    assert verdicts(_results(10_000_000, 181.0))["end_to_end"] is False


def test_other_sizes_get_no_seconds_verdict_and_freshness_is_held_to_10_s():
    met = verdicts(_results(10_000, 5.0))
    assert met["end_to_end"] is None and met["freshness"] is True
    assert met["produce"] is False  # 100k/s against 250k/s
    assert "≤ 180 s at 10M, ≤ 30 s at 1M" in markdown(_results(10_000, 5.0))


def test_stages_without_a_target_show_no_verdict():
    row = next(line for line in markdown(_results(10_000_000, 179.0)).splitlines()
               if line.startswith("| compact |"))
    assert row.endswith("|  |  |")
