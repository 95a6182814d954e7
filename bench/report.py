"""The results file, the Markdown table and the chart, all from one results document."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from spark.jars import SPARK_VERSION
from stack.versions import ELASTICSEARCH_VERSION, KAFKA_VERSION

FULL_RUN_EVENTS = 10_000_000
SMALL_RUN_EVENTS = 1_000_000  # make bench's default

# The targets for this 2-core machine. Seconds targets are for the full 10M-event run; end to end
# also has one for a 1M-event run.
TARGETS = {
    "produce": {"min_events_per_s": 250_000},
    "ingest": {"min_events_per_s": 150_000},
    "aggregate": {"max_seconds": 30},
    "validate": {"max_seconds": 30},
    "end_to_end": {"max_seconds": 180, "max_seconds_at_1m": 30},
    "freshness": {"max_p95_s": 10},
    "stack_memory": {"max_gib": 8},
}

STAGE_ORDER = ["produce", "ingest", "compact", "aggregate", "validate", "index", "end_to_end"]


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "platform": platform.platform(),
        "versions": {"python": platform.python_version(), "spark": SPARK_VERSION,
                     "kafka": KAFKA_VERSION, "elasticsearch": ELASTICSEARCH_VERSION,
                     **{name: version(name) for name in
                        ("dagster", "pyspark", "confluent-kafka", "elasticsearch",
                         "great-expectations")}},
    }


def verdicts(results: dict) -> dict[str, bool | None]:
    """Target met (True/False) per stage; None where the run is too small to compare."""
    stages = results["stages"]
    full = results["events"] >= FULL_RUN_EVENTS
    out: dict[str, bool | None] = {}
    for stage, target in TARGETS.items():
        if stage == "stack_memory":
            out[stage] = results["stack_peak_memory"]["stack_gib"] <= target["max_gib"]
        elif stage == "freshness":
            out[stage] = stages["freshness"]["lake"]["p95_s"] <= target["max_p95_s"]
        elif "min_events_per_s" in target:
            out[stage] = stages[stage]["events_per_s"] >= target["min_events_per_s"]
        else:
            limit = target["max_seconds"] if full else (
                target.get("max_seconds_at_1m") if results["events"] == SMALL_RUN_EVENTS else None)
            out[stage] = stages[stage]["seconds"] <= limit if limit is not None else None
    return out


def markdown(results: dict) -> str:
    met = verdicts(results)
    rows = ["| stage | events | seconds | events/s | peak stack memory | target | met |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- |"]
    for stage in STAGE_ORDER:
        r = results["stages"][stage]
        verdict = _met(met[stage]) if stage in met else ""  # compact and index have no target
        rows.append(f"| {stage} | {r['events']:,} | {r['seconds']:.1f} | {r['events_per_s']:,} | "
                    f"{_gib(r['peak_memory'])} | {_target(stage)} | {verdict} |")
    fresh = results["stages"]["freshness"]
    rows.append(f"| freshness (produce → lake) | {fresh['events']:,} at {fresh['rate_per_s']:,.0f}/s | "
                f"p50 {fresh['lake']['p50_s']} / p95 {fresh['lake']['p95_s']} | | "
                f"{_gib(fresh['peak_memory'])} | {_target('freshness')} | {_met(met['freshness'])} |")
    rows.append(f"| whole stack, peak | | | | {_gib(results['stack_peak_memory'])} | "
                f"{_target('stack_memory')} | {_met(met['stack_memory'])} |")
    m = results["machine"]
    return (f"clickstream bench, {results['events']:,} events, {m['cores']} cores, "
            f"{m['memory_gib']} GiB, {results['started_at']}\n\n" + "\n".join(rows))


def chart(results: dict, path: Path) -> None:
    """Horizontal bars of the stage seconds, annotated with events/s."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    stages = [s for s in STAGE_ORDER if s != "end_to_end"]
    seconds = [results["stages"][s]["seconds"] for s in stages]
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    bars = ax.barh(stages[::-1], seconds[::-1], color="#3b7dd8")
    for bar, stage in zip(bars, stages[::-1], strict=True):
        rate = results["stages"][stage]["events_per_s"]
        ax.annotate(f" {bar.get_width():.1f} s, {rate:,} ev/s",
                    (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center", fontsize=8)
    e2e = results["stages"]["end_to_end"]
    ax.set_title(f"clickstream bench: {results['events']:,} events, end to end {e2e['seconds']:.0f} s "
                 f"({e2e['events_per_s']:,} events/s)", fontsize=10)
    ax.set_xlabel("seconds")
    ax.set_xlim(0, max(seconds) * 1.45)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write(results: dict, directory: Path) -> dict[str, Path]:
    """latest.json, a timestamped copy and latest.png; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = file_stamp(results)
    text = json.dumps({**results, "targets": TARGETS, "met": verdicts(results)}, indent=2)
    paths = {"latest": directory / "latest.json", "copy": directory / f"bench-{stamp}.json",
             "chart": directory / "latest.png"}
    paths["latest"].write_text(text)
    paths["copy"].write_text(text)
    chart(results, paths["chart"])
    return paths


def started_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def file_stamp(results: dict) -> str:
    """The results' start time as it appears in their timestamped file names."""
    return datetime.fromisoformat(results["started_at"]).strftime("%Y%m%dT%H%M%SZ")


def _gib(peak: dict | None) -> str:
    return f"{peak['stack_gib']:.2f} GiB" if peak else "-"


def _target(stage: str) -> str:
    target = TARGETS.get(stage)
    if not target:
        return ""
    labels = {"min_events_per_s": "≥ {:,}/s", "max_seconds": "≤ {} s at 10M",
              "max_seconds_at_1m": "≤ {} s at 1M", "max_p95_s": "p95 ≤ {} s", "max_gib": "≤ {} GiB"}
    return ", ".join(labels[kind].format(value) for kind, value in target.items())


def _met(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "n/a below 10M"}[value]
