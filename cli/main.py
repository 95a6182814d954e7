"""The `clickstream` command."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from config.settings import (
    DEFAULT_DAGSTER_HOME,
    SettingError,
    Settings,
    child_env,
    use_utc,
)
from dashboard import DEFAULT_PORT as DASHBOARD_PORT
from spark.ingest.config import IngestConfig
from stack.errors import StackError

# What `bench live --kill` can kill (bench.kills.TARGETS, which imports Dagster: not at start-up).
KILL_TARGETS = ("spark-connect", "kafka", "elasticsearch", "ingest-run")

# Event time is UTC everywhere, including in every JVM and Python process the CLI starts.
use_utc()


def _stack(args: argparse.Namespace, settings: Settings) -> int:
    from stack import manager

    if args.action == "up":
        statuses = manager.up(settings)
    elif args.action == "down":
        stopped = manager.down(settings)
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing started by the stack runs")
        return 0
    else:
        statuses = manager.status(settings)
    print(manager.HEADER)
    for status in statuses:
        print(status.line())
    return 0 if all(s.state != "stopped" for s in statuses) else 1


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    import json
    import random
    from datetime import UTC, datetime

    from simulator.producer import (
        GeneratorError,
        default_start,
        parse_duration,
        parse_shift,
        produce,
        write_jsonl,
    )
    from simulator.timeline import GeneratorConfig

    if args.events == 0 and not args.rate:
        raise SystemExit("error: --events 0 (run until stopped) needs --rate")
    start = default_start()
    if args.start:
        start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    try:
        config = GeneratorConfig(
            events=args.events, seed=seed, start=start, days=args.days, users=args.users,
            duplicate_ratio=args.duplicate_ratio, late_ratio=args.late_ratio,
            max_lateness_s=parse_duration(args.max_lateness), malformed_ratio=args.malformed_ratio,
            shifts=tuple(parse_shift(text, start) for text in args.shift),
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    target = args.output or f"topic {args.topic or settings.topic} at {settings.kafka_bootstrap_servers}"
    pace = f"{args.rate:g} events/s, event time = now" if args.rate else f"from {start.isoformat()}"
    print(f"generating {args.events or 'unbounded'} events (seed {seed}, {pace}) -> {target}",
          file=sys.stderr, flush=True)
    try:
        if args.output:
            if args.rate:
                raise SystemExit("error: --rate applies to Kafka output, not --output files")
            summary = write_jsonl(config, Path(args.output), progress=not args.quiet)
        else:
            from simulator.producer import DEFAULT_WORKERS

            workers = args.workers or (1 if args.rate else DEFAULT_WORKERS)
            summary = produce(config, settings, topic=args.topic, workers=workers,
                              rate=args.rate, progress=not args.quiet)
    except GeneratorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary.render())
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps({"seed": seed, **summary.to_dict()}, indent=2))
    if summary.failed:
        print(f"error: {summary.failed} messages were not delivered", file=sys.stderr)
        return 1
    return 130 if summary.interrupted else 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from clickstream_dagster.resources.spark import pipeline_spark
    from spark.ingest.config import AVAILABLE_NOW, CONTINUOUS
    from spark.ingest.stream import IngestJob
    from spark.session import SparkServerUnavailable, naming_the_server

    mode = CONTINUOUS if args.continuous else AVAILABLE_NOW
    config = IngestConfig.from_settings(settings, mode=mode, processing_time=args.processing_time,
                                        max_offsets_per_trigger=args.max_offsets_per_trigger)
    print(f"ingesting {settings.topic} -> {config.landing} ({mode}); checkpoint {config.checkpoint}",
          file=sys.stderr, flush=True)
    spark = pipeline_spark(settings, "clickstream-ingest")
    totals = {"input_rows": 0, "landing_rows": 0, "dead_letters": 0, "duplicates_removed": 0}
    try:
        with naming_the_server(settings.spark_remote, settings.spark_retry_s):
            batches = IngestJob(spark, config).run()
    except SparkServerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopped; the checkpoint keeps the position, so a restart resumes exactly there",
              file=sys.stderr, flush=True)
        # Not a normal exit: the Spark client's threads may still wait on a server that hangs,
        # and the interpreter would join them first.
        os._exit(130)
    for batch in batches:
        for key in totals:
            totals[key] += getattr(batch, key)
        print(f"batch {batch.batch_id}: {batch.input_rows:,} in, {batch.landing_rows:,} landed, "
              f"{batch.dead_letters:,} dead letters, {batch.duplicates_removed:,} duplicates "
              f"removed in {batch.seconds:.1f} s")
    print("total: " + ", ".join(f"{k} {v:,}" for k, v in totals.items()))
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """The main job: stack, live traffic, and Dagster with its sensors on, until Ctrl-C."""
    import subprocess

    from sandbox.instance import ensure_instance
    from stack import manager

    manager.up(settings)
    dagster_home = settings.dagster_home or DEFAULT_DAGSTER_HOME
    note = ensure_instance(dagster_home)
    if note:
        print(f"note: {note}", file=sys.stderr)
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    generator_log = open(logs / "generator.log", "ab")  # noqa: SIM115 (lives as long as the child)
    generator = subprocess.Popen(
        [sys.executable, "-m", "cli", "generate", "--events", "0",
         "--rate", str(args.rate), "--quiet"], stdout=generator_log, stderr=subprocess.STDOUT)
    dashboard_log = open(logs / "dashboard.log", "ab")  # noqa: SIM115 (lives as long as the child)
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "cli", "dashboard", "--host", args.host, "--port",
         str(args.dashboard_port)], stdout=dashboard_log, stderr=subprocess.STDOUT)
    root = Path(__file__).resolve().parent.parent
    dagster = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster")), "dev", "-w", str(root / "workspace.yaml"),
         "-h", args.host, "-p", str(args.port)], cwd=root,
        env=child_env(DAGSTER_HOME=str(dagster_home)))
    print(f"\nDagster UI: http://{args.host}:{args.port}\n"
          f"  dashboard: http://{args.host}:{args.dashboard_port} (log: {logs / 'dashboard.log'})\n"
          f"  live traffic: {args.rate:g} events/s into {settings.topic} (log: {logs / 'generator.log'})\n"
          f"  sensors look every {settings.sensor_interval_s} s: an ingest run when the topic has new "
          f"records, then the days it touched.\n"
          f"  Ctrl-C stops Dagster and the generator; `make down` stops Kafka and Elasticsearch.",
          flush=True)
    try:
        return dagster.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        # The generator first, so it flushes what it produced; then Dagster.
        for child in (generator, dashboard, dagster):
            _stop(child)


def _stop(child, grace_s: float = 30) -> None:
    """SIGINT, then SIGTERM, then SIGKILL: a child that ignores one signal still stops."""
    import subprocess

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if child.poll() is not None:
            return
        child.send_signal(sig)
        try:
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue


def _reset(args: argparse.Namespace, settings: Settings) -> int:
    """`make run`'s data from scratch: topics emptied, no lake, no indices, a new Dagster instance."""
    import shutil

    from sandbox.pipeline import reset_data

    dagster_home = settings.dagster_home or DEFAULT_DAGSTER_HOME
    print(f"This deletes every record of {settings.topic} and {settings.dlq_topic}, the lake at "
          f"{settings.lake_dir}, the {settings.elasticsearch_index_prefix}-* indices and the "
          f"Dagster instance at {dagster_home} (runs, sensor cursors). Stop `make run` first.")
    if not args.yes and input("Type 'reset' to go on: ").strip() != "reset":
        print("nothing deleted")
        return 1
    gone = reset_data(settings)
    if dagster_home.exists():
        shutil.rmtree(dagster_home)
        gone.append(f"Dagster instance {dagster_home}")
    print("deleted: " + (", ".join(gone) or "nothing was there") +
          "\nthe next `make run` starts from empty topics and an empty lake")
    return 0


def _dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from config.clients import elasticsearch_client
    from dashboard.app import serve
    from dashboard.queries import Indices

    prefix = args.index_prefix or settings.elasticsearch_index_prefix
    print(f"dashboard of {prefix}-* at http://{args.host}:{args.port}", flush=True)
    serve(Indices(elasticsearch_client(settings), prefix), args.host, args.port)
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from .demo import run_demo

    print(run_demo(settings, args.events, args.days))
    return 0


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.stage == "live":
        return _bench_live(args, settings)
    if args.stage == "profile":
        return _bench_profile(args, settings)
    from bench import report
    from bench.harness import run_benchmark
    from stack import manager

    manager.up(settings)
    started_at = report.started_now()
    results = {"started_at": started_at, "machine": report.machine(),
               **run_benchmark(settings, args.events, seed=args.seed,
                               freshness_rate=args.freshness_rate,
                               freshness_seconds=args.freshness_seconds,
                               freshness_trigger_s=args.freshness_trigger,
                               progress=not args.quiet)}
    paths = report.write(results, Path(args.results_dir))
    print("\n" + report.markdown(results) + "\n")
    print("results: " + ", ".join(str(p) for p in paths.values()))
    return 0


def _bench_live(args: argparse.Namespace, settings: Settings) -> int:
    from bench import live
    from stack import manager

    manager.up(settings)
    print(f"bench live: {args.rate:g} events/s for {args.minutes:g} min through dagster dev, its "
          f"daemon and sensors (sandbox {live.LIVE})", flush=True)
    from bench.kills import Kill

    kill = Kill(args.kill, args.kill_after) if args.kill else None
    results = live.run_live_benchmark(settings, args.rate, args.minutes, progress=not args.quiet,
                                      kill=kill)
    paths = live.write(results, Path(args.results_dir))
    print("\n" + live.markdown(results) + "\n")
    print("results: " + ", ".join(str(p) for p in paths.values()))
    return 0


def _bench_profile(args: argparse.Namespace, settings: Settings) -> int:
    from bench import profile
    from stack import manager

    manager.up(settings)
    results = profile.run_profile(settings, args.events, repeats=args.repeats, seed=args.seed,
                                  progress=not args.quiet)
    path = profile.write(results, Path(args.results_dir))
    print("\n" + profile.markdown(results) + "\n")
    print(f"results: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickstream", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser(
        "stack", help="run the real local stack (Kafka, Elasticsearch) without Docker"
    )
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(handler=_stack)

    gen = commands.add_parser("generate", help="simulate web traffic into Kafka or a JSONL file")
    gen.add_argument("--events", type=int, required=True,
                     help="messages to deliver, faults included (0 with --rate: until stopped)")
    gen.add_argument("--rate", type=float, default=0,
                     help="events/s in real time, event_ts = now (0: as fast as possible)")
    gen.add_argument("--seed", type=int, help="same seed and start: byte-identical output")
    gen.add_argument("--start", help="first event day, ISO-8601 UTC (default: today 00:00Z)")
    gen.add_argument("--days", type=float, default=1.0, help="days the traffic spreads over")
    gen.add_argument("--users", type=int, default=10_000, help="size of the user population")
    gen.add_argument("--duplicate-ratio", type=float, default=0.0,
                     help="share of messages that repeat an earlier event (same event_id)")
    gen.add_argument("--late-ratio", type=float, default=0.0,
                     help="share of messages delivered late, out of order")
    gen.add_argument("--max-lateness", default="10m", help="how late a late event can be (10m, 2h)")
    gen.add_argument("--shift", action="append", default=[], metavar="HH:MM,DURATION,FACTOR",
                     help="inject a traffic spike (factor > 1) or drop (< 1) on the first day, "
                          "e.g. 14:00,15m,4 or 19:00,30m,0; repeatable")
    gen.add_argument("--malformed-ratio", type=float, default=0.0,
                     help="share of messages that break the contract (dead letters)")
    target = gen.add_mutually_exclusive_group()
    target.add_argument("--output", help="write JSONL here instead of producing to Kafka")
    target.add_argument("--topic", help="Kafka topic (default: CLICKSTREAM_TOPIC)")
    gen.add_argument("--workers", type=int, default=None,
                     help="producer processes (default: up to 2)")
    gen.add_argument("--summary-json", help="also write the summary here as JSON")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(handler=_generate)

    ingest = commands.add_parser("ingest", help="Kafka -> Parquet landing lake with Spark")
    modes = ingest.add_mutually_exclusive_group()
    modes.add_argument("--available-now", action="store_true", default=True,
                       help="consume everything new, then exit (default; what Dagster runs)")
    modes.add_argument("--continuous", action="store_true",
                       help="keep running with a processing-time trigger until Ctrl-C")
    ingest.add_argument("--max-offsets-per-trigger", type=int,
                        default=IngestConfig.max_offsets_per_trigger,
                        help="largest micro-batch, in Kafka records")
    ingest.add_argument("--processing-time", default=IngestConfig.processing_time,
                        help="trigger interval in continuous mode")
    ingest.set_defaults(handler=_ingest)

    run = commands.add_parser("run", help="stack + live traffic + Dagster UI with sensors on")
    run.add_argument("--rate", type=float, default=100, help="live traffic, events/s")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=3000)
    run.add_argument("--dashboard-port", type=int, default=DASHBOARD_PORT)
    run.set_defaults(handler=_run)

    demo = commands.add_parser("demo", help="bounded end-to-end run on generated days, then a report")
    demo.add_argument("--events", type=int, default=400_000)
    demo.add_argument("--days", type=int, default=4,
                      help="days of traffic; the last has a spike and a drop, judged against the "
                           "days before it (3 or more needed)")
    demo.set_defaults(handler=_demo)

    reset = commands.add_parser("reset", help="delete make run's data: topic records, lake, "
                                              "indices and the Dagster instance")
    reset.add_argument("--yes", action="store_true", help="do not ask first")
    reset.set_defaults(handler=_reset)

    dashboard = commands.add_parser("dashboard", help="serve the dashboard page (make run does too)")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=int, default=DASHBOARD_PORT)
    dashboard.add_argument("--index-prefix", help="the indices to show (default: "
                                                  "CLICKSTREAM_ES_INDEX_PREFIX; the demo's: "
                                                  "clickstream-demo)")
    dashboard.set_defaults(handler=_dashboard)

    bench = commands.add_parser("bench", help="time every stage on one generated day, then end to "
                                             "end; `bench live` measures the live path instead, "
                                             "`bench profile` the layers of the ingest")
    bench.add_argument("stage", nargs="?", choices=["live", "profile"],
                       help="live: dagster dev with its sensors under steady traffic, minute by "
                            "minute; profile: each layer of the ingest's transformation, then the "
                            "real ingest, on one backlog")
    bench.add_argument("--rate", type=float, default=100, help="live: events/s of live traffic")
    bench.add_argument("--minutes", type=float, default=10, help="live: how long to measure")
    bench.add_argument("--kill", choices=KILL_TARGETS,
                       help="live: SIGKILL this part of the live path mid-run, then report how it "
                            "came back (time to recovery, failed runs and their alerts, restarts, "
                            "every record once)")
    bench.add_argument("--kill-after", type=float, default=120, metavar="SECONDS",
                       help="live: when to kill, from the start of the measurement")
    bench.add_argument("--events", type=int, default=1_000_000, help="events in the day (10000000: full run)")
    bench.add_argument("--seed", type=int, default=1)
    bench.add_argument("--repeats", type=int, default=2,
                       help="profile: runs of each layer; the fastest is kept")
    bench.add_argument("--freshness-rate", type=float, default=2_000,
                       help="events/s produced while the continuous ingest runs")
    bench.add_argument("--freshness-seconds", type=float, default=60, help="how long to produce at that rate")
    bench.add_argument("--freshness-trigger", type=float, default=None, metavar="SECONDS",
                       help="the continuous ingest's trigger for the freshness stage (default: "
                            "CLICKSTREAM_INGEST_TRIGGER_S, the live path's)")
    bench.add_argument("--results-dir", default="bench/results",
                       help="where latest.json, a timestamped copy and latest.png go")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(handler=_bench)
    return parser


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C and SIGTERM both mean "stop cleanly": flush, summarize, stop children. Installed
    # explicitly because a process started in the background inherits SIGINT as ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, Settings.from_env())
    except (StackError, SettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
