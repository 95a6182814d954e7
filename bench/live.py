"""`clickstream bench live`: the live path as `make run` runs it, measured minute by minute.

The real thing, on a sandbox of its own (topics, lake, index family and Dagster instance): the
stack's services, `dagster dev` with its daemon and every sensor on, runs queued in their lanes, and
live traffic from the real-time generator. Beside that traffic the benchmark sends a probe event
every few seconds, each in a session of its own, and times it:
- produce -> lake: until the ingest micro-batch that read the probe's offset committed to the
  landing table (its `landed_at` in the batch log);
- produce -> Elasticsearch: until the probe's session document is searchable in the sessions index.
Every sample also records the runs queued and in progress, failed runs, and the CPU and resident
memory of the whole stack (services, Dagster and its runs, the generator) from /proc, CPU per
process too. The micro-batches' own durations come from the batch log, so a slow minute shows
whether the ingest or the refresh after it was slow.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import orjson
from confluent_kafka import Producer
from elasticsearch import ApiError, TransportError

from clickstream_dagster.live.refresh import LIVE_INDICES
from clickstream_dagster.resources.spark import pipeline_spark
from clickstream_dagster.serving.indices import SESSIONS
from config.clients import elasticsearch_client
from config.settings import Settings, child_env
from sandbox.instance import ensure_instance
from sandbox.pipeline import Sandbox
from simulator.producer import produce
from simulator.timeline import GeneratorConfig
from spark.ingest.batch_log import read_batch_log
from spark.session import connect
from stack.process import descendants, read_pid_file, tree_rss_bytes
from stack.services import local_services

from . import report
from .kills import Kill, failed_runs, landing_accounting, recovery, restarts_since, topic_records

LIVE = "clickstream-live"
BACKLOG_EVENTS = 10_000
PROBE_EVERY_S = 5
SAMPLE_EVERY_S = 2
# How often pending probes are looked for in Elasticsearch: a probe's latency is read up to this
# late, so it is kept well under the latencies measured.
SEARCH_EVERY_S = 0.5
# The lake latency comes from the batch log's landed_at, so reading the log (a Spark query, which
# loads the very server under test) every 15 s loses no precision.
LAKE_POLL_S = 15
GIB = 1024**3
WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING]
TARGETS = {"max_queued_runs": 2, "failed_runs": 0, "es_p95_s": 30, "stack_memory_gib": 8,
           "min_idle_cpu_share_at_100_per_s": 0.5, "ingest_run_s": 5}


@dataclass
class Probe:
    event_id: str
    session_id: str
    sent_at: float  # time.time() on send
    partition: int | None = None
    offset: int | None = None
    lake_s: float | None = None
    es_s: float | None = None


@dataclass
class Sample:
    at: float
    queued: int
    in_progress: int
    failed: int
    cpu_share: float  # of the machine's cores, since the previous sample
    rss_gib: float
    cpu_by_process: dict[str, float] = field(default_factory=dict)  # the same share, per process
    rss_gib_by_process: dict[str, float] = field(default_factory=dict)  # the same memory, per process


@dataclass
class LiveRun:
    settings: Settings
    rate: float
    minutes: float
    probes: list[Probe] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    # The ingest's batch log records, by (query run's first start, batch id).
    batches: dict[tuple[str, int], dict] = field(default_factory=dict)


def run_live_benchmark(base: Settings, rate: float, minutes: float, *, progress: bool = True,
                       kill: Kill | None = None) -> dict:
    sandbox = Sandbox(LIVE, base)
    sandbox.reset()
    settings = sandbox.settings
    home = settings.state_dir / "bench-live" / "dagster"
    shutil.rmtree(home, ignore_errors=True)
    ensure_instance(home)
    env = _sandbox_env(settings, home)
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    live = LiveRun(settings, rate, minutes)
    started_at = report.started_now()
    root = Path(__file__).resolve().parent.parent
    # A backlog first: the first ingest run then shows what one run of 10k events costs, from
    # the sensor's request to success, before live traffic shares the machine with it.
    produce(GeneratorConfig(events=BACKLOG_EVENTS, seed=11), settings, progress=False)
    with open(logs / "bench-live-dagster.log", "wb") as dagster_log, \
            open(logs / "bench-live-generator.log", "wb") as generator_log:
        dagster_proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster")), "dev", "-w", str(root / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(_free_port())],
            cwd=root, env=env, stdout=dagster_log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            backlog_run = _first_ingest(home, dagster_proc)
        except BaseException:
            _stop(dagster_proc)
            raise
        if progress:
            print(f"  backlog of {BACKLOG_EVENTS:,} events: landed and refreshed "
                  f"{backlog_run['request_to_refreshed_s']} s after the ingest run's request "
                  f"({backlog_run['start_to_refreshed_s']} s after it started)", flush=True)
        generator = subprocess.Popen(
            [sys.executable, "-m", "cli", "generate", "--events", "0", "--rate",
             str(rate), "--quiet"], env=env, stdout=generator_log, stderr=subprocess.STDOUT,
            start_new_session=True)
        killed = {}
        try:
            _measure(live, home, {"dagster": dagster_proc.pid, "generator": generator.pid},
                     progress, kill)
            _stop(generator)
            if kill is not None:
                killed = _after_kill(live, home, kill, progress)
            # Read while Dagster still runs: stopping it interrupts a run in flight, which would
            # then read as failed.
            other_runs = _other_runs(dg.DagsterInstance.from_config(str(home)),
                                     _measured_from(live))
        finally:
            for child in (generator, dagster_proc):
                _stop(child)
    return {"started_at": started_at, "rate_per_s": rate, "minutes": minutes,
            "sensor_interval_s": settings.sensor_interval_s, "backlog_ingest_run": backlog_run,
            **summarize(live, home), "other_runs": other_runs, **({"kill": killed} if killed else {})}


def _after_kill(live: LiveRun, home: Path, kill: Kill, progress: bool, drain_s: float = 300) -> dict:
    """Once the traffic stopped and the ingest took all of it: how the live path came back."""
    if kill.at is None:
        raise RuntimeError(f"the run ended before the kill at {kill.after_s:g} s: run it longer")
    batch_log = BatchLog(live.settings)
    records, deadline = topic_records(live.settings), time.time() + drain_s
    while time.time() < deadline:
        batch_log.read_into(live, since=kill.at - 600)
        if sum(b["input_rows"] for b in live.batches.values()) >= records:
            break
        time.sleep(5)
    instance = dg.DagsterInstance.from_config(str(home))
    result = {**recovery(kill, live.probes), "failed_runs": failed_runs(instance, kill.at - 60),
              **landing_accounting(batch_log.session(), live.settings,
                                   list(live.batches.values()))}
    result["restarts"] = restarts_since(kill, result["restarts"])
    if progress:
        print(f"  after the kill: {json.dumps(result, indent=2)}", flush=True)
    return result


def _first_ingest(home: Path, dagster_proc: subprocess.Popen, timeout_s: float = 300) -> dict:
    """Wait until the first ingest run (the backlog's) has landed it and refreshed the live path:
    its first `live_indices` materialization. A streaming run goes on after that, so that moment,
    not the run's end, is when the backlog is in; an available-now run ends right after it."""
    instance = dg.DagsterInstance.from_config(str(home))
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if dagster_proc.poll() is not None:
            raise RuntimeError("dagster dev exited; see logs/bench-live-dagster.log in the state folder")
        records = instance.get_run_records(dg.RunsFilter(job_name="ingest_job"), limit=1)
        if records and records[0].dagster_run.status == dg.DagsterRunStatus.FAILURE:
            raise RuntimeError(f"the backlog's ingest run {records[0].dagster_run.run_id} failed")
        refreshed = instance.fetch_materializations(LIVE_INDICES, limit=1).records
        if records and refreshed and refreshed[0].run_id == records[0].dagster_run.run_id:
            run, at = records[0], refreshed[0].timestamp
            return {"events": BACKLOG_EVENTS,
                    "request_to_refreshed_s": round(at - run.create_timestamp.timestamp(), 2),
                    "start_to_refreshed_s": round(at - run.start_time, 2)}
        time.sleep(0.5)
    raise TimeoutError(f"the backlog's ingest run did not land it within {timeout_s:.0f} s")


def _sandbox_env(settings: Settings, home: Path) -> dict[str, str]:
    return child_env(DAGSTER_HOME=str(home), CLICKSTREAM_AUTOMATION="on",
                     CLICKSTREAM_TOPIC=settings.topic, CLICKSTREAM_DLQ_TOPIC=settings.dlq_topic,
                     CLICKSTREAM_LAKE_DIR=settings.lake_dir,
                     CLICKSTREAM_ES_INDEX_PREFIX=settings.elasticsearch_index_prefix)


def _measure(live: LiveRun, home: Path, own_pids: dict[str, int], progress: bool,
             kill: Kill | None = None) -> None:
    settings = live.settings
    instance = dg.DagsterInstance.from_config(str(home))
    producer = Producer(settings.kafka_client_config(**{"acks": "all", "enable.idempotence": True,
                                                        "linger.ms": 0}))
    client = elasticsearch_client(settings)
    batch_log = BatchLog(settings)
    sessions_alias = SESSIONS.with_prefix(settings.elasticsearch_index_prefix).alias
    roots = {**own_pids, **_service_pids(settings)}
    cpu = CpuMeter(roots)
    began = time.time()
    end = began + live.minutes * 60
    next_probe = began
    next_minute = began + 60
    next_lake_poll = next_sample = began
    while time.time() < end:
        now = time.time()
        if kill is not None and kill.due(began):
            what = kill.fire(settings, instance, own_pids["dagster"])
            if progress:
                print(f"  killed {what} at {now - began:.0f} s", flush=True)
        if now >= next_probe:
            live.probes.append(_send_probe(producer, settings.topic))
            next_probe += PROBE_EVERY_S
        producer.poll(0)
        if now >= next_lake_poll:
            next_lake_poll = now + LAKE_POLL_S
            batch_log.read_into(live, since=began)
        _resolve(live.probes, live.batches.values(), client, sessions_alias)
        if now >= next_sample:
            next_sample = now + SAMPLE_EVERY_S
            # A service the supervisor restarted (`--kill`) is counted under its new pid.
            roots = cpu.follow({**own_pids, **_service_pids(settings)})
            by_process = cpu.shares()
            memory = {name: tree_rss_bytes(pid) / GIB for name, pid in roots.items()}
            live.samples.append(Sample(now, *_run_counts(instance, began),
                                       sum(by_process.values()), round(sum(memory.values()), 2),
                                       by_process, {name: round(gib, 2) for name, gib in memory.items()}))
        if progress and now >= next_minute:
            print(f"  minute {int((now - began) // 60)}: {_minute_line(live, now - 60, now)}",
                  flush=True)
            next_minute += 60
        time.sleep(max(0.0, SEARCH_EVERY_S - (time.time() - now)))
    producer.flush(10)
    # Probes sent near the end get a last chance to arrive, without new traffic counted against it.
    deadline = time.time() + 90
    next_lake_poll = 0.0
    while any(p.es_s is None or p.lake_s is None for p in live.probes) and time.time() < deadline:
        if time.time() >= next_lake_poll:
            next_lake_poll = time.time() + SAMPLE_EVERY_S
            batch_log.read_into(live, since=began)
        _resolve(live.probes, live.batches.values(), client, sessions_alias)
        time.sleep(SEARCH_EVERY_S)


def _service_pids(settings: Settings) -> dict[str, int]:
    """Every service `stack up` runs for `settings`: brokers, nodes, the server, a cluster's workers."""
    services = {service.name: read_pid_file(settings.state_dir, service.name)
                for service in local_services(settings)}
    return {name: s.pid for name, s in services.items() if s and s.is_alive()}


class BatchLog:
    """The benchmark's reads of the batch log, on a session of its own that it opens again when
    the server restarted under it (`--kill spark-connect`)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._session = None

    def session(self):
        if self._session is None:
            self._session = (connect(self.settings.spark_remote, self.settings.spark_retry_s)
                             if self.settings.spark_remote
                             else pipeline_spark(self.settings, "clickstream-bench-live"))
        return self._session

    def read_into(self, live: LiveRun, since: float) -> None:
        try:
            _read_batches(live, self.session(), since)
        except Exception as exc:  # pyspark's Connect errors share no narrower base
            print(f"  the batch log could not be read ({type(exc).__name__}: "
                  f"{str(exc).splitlines()[0][:120]}); reading it again on a new session",
                  flush=True)
            self._session = None


def _send_probe(producer: Producer, topic: str) -> Probe:
    """A valid page view in a session of its own, event time = now."""
    probe = Probe(str(uuid.uuid4()), f"probe-{uuid.uuid4()}", time.time())
    event = {
        "schema_version": 1, "event_id": probe.event_id, "event_type": "page_view",
        "event_ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "user": {"user_id": "bench-probe", "session_id": probe.session_id},
        "page": {"url": "https://shop.example.com/", "referrer": None},
        "geo": {"country": "US", "city": "Seattle", "ip": "23.89.120.82"},
        "device": {"type": "desktop", "os": "Linux", "browser": "Firefox", "user_agent": "bench-probe"},
        "campaign": None, "properties": {},
    }

    def delivered(error, message):
        if error is None:
            probe.partition, probe.offset = message.partition(), message.offset()

    producer.produce(topic, orjson.dumps(event), key=b"bench-probe", on_delivery=delivered)
    return probe


def _read_batches(live: LiveRun, spark, since: float) -> None:
    """Add the batch log's records started since the newest one seen (with a margin for a batch
    that started earlier but logged later): the whole log, read every few seconds, loaded the
    server it measures; file statistics on started_at skip the older files."""
    newest = max((b["started_at"] for b in live.batches.values()), default=None)
    after = (datetime.fromisoformat(newest).timestamp() if newest else since) - 300
    for batch in read_batch_log(spark, live.settings.lake_dir, started_after=datetime.fromtimestamp(
            after, UTC).isoformat(timespec="milliseconds")):
        live.batches[(batch["started_at"], batch["batch_id"])] = batch


def _resolve(probes: list[Probe], batches: Iterable[dict], client, sessions_alias: str) -> None:
    """Fill in the latencies of probes that have reached the lake or Elasticsearch since."""
    now = time.time()
    for probe in (p for p in probes if p.lake_s is None and p.offset is not None):
        part = str(probe.partition)
        for batch in batches:
            if batch["start_offsets"].get(part, 0) <= probe.offset < batch["end_offsets"].get(part, 0):
                probe.lake_s = round(_landed_s(batch) - probe.sent_at, 2)
    pending_es = [p for p in probes if p.es_s is None]
    if pending_es:
        try:
            found = client.search(index=sessions_alias, size=len(pending_es), _source=["session_id"],
                                  query={"terms": {"session_id": [p.session_id for p in pending_es]}},
                                  ignore_unavailable=True, allow_no_indices=True)
        except ApiError as error:
            if error.status_code != 503:
                raise
            return  # a day's index created a moment ago has no shard to search yet: next sample
        except TransportError:
            return  # Elasticsearch is down (`--kill elasticsearch`): the probes wait for it
        seen = {hit["_source"]["session_id"] for hit in found["hits"]["hits"]}
        for probe in pending_es:
            if probe.session_id in seen:
                probe.es_s = round(now - probe.sent_at, 2)


def _run_counts(instance: dg.DagsterInstance, since: float) -> tuple[int, int, int]:
    queued = instance.get_runs_count(dg.RunsFilter(statuses=WAITING))
    in_progress = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    failed = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE],
                                                   created_after=datetime.fromtimestamp(since, UTC)))
    return queued, in_progress, failed


class CpuMeter:
    """CPU seconds of named process trees from /proc, as the sum of each member's own time since it
    was last seen. Per process, because a tree's total jumps: a child's whole lifetime moves into
    its parent's reaped-children time when it ends, and a member missed by one scan reappears in
    the next. A process that lives less than one sample is not counted."""

    def __init__(self, roots: dict[str, int]):
        self._roots = roots
        self._tick = os.sysconf("SC_CLK_TCK")
        self._seen: dict[tuple[int, int], int] = {}
        self._at = time.time()
        self._spent()

    def follow(self, roots: dict[str, int]) -> dict[str, int]:
        """Measure these trees from now on (a restarted service has a new root); returns them."""
        self._roots = roots
        return roots

    def shares(self) -> dict[str, float]:
        """Each tree's share of all the machine's cores since the last call."""
        now, spent = time.time(), self._spent()
        then, self._at = self._at, now
        cores = max(now - then, 1e-6) * (os.cpu_count() or 1)
        return {name: round(seconds / cores, 3) for name, seconds in spent.items()}

    def _spent(self) -> dict[str, float]:
        """Seconds each tree's processes spent since the last call (their start, for new ones)."""
        spent, counted = {}, set()
        for name, root in self._roots.items():
            ticks = 0
            for pid in {root, *descendants(root)} - counted:
                counted.add(pid)
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                key = (pid, int(fields[19]))  # pid and start time: a reused pid is a new process
                own = int(fields[11]) + int(fields[12])  # utime stime
                ticks += own - self._seen.get(key, 0)
                self._seen[key] = own
            spent[name] = ticks / self._tick
        return spent


def summarize(live: LiveRun, home: Path) -> dict:
    instance = dg.DagsterInstance.from_config(str(home))
    start = _measured_from(live)
    minutes = []
    for index in range(int(live.minutes)):
        low, high = start + 60 * index, start + 60 * (index + 1)
        minutes.append({"minute": index + 1, **_window(live, low, high)})
    overall = _window(live, start, start + live.minutes * 60)
    ingest = _ingest_runs(instance)
    overall["ingest_run_s"] = ingest
    return {"per_minute": minutes, "overall": overall, "targets": TARGETS,
            "probes": [p.__dict__ for p in live.probes]}


def _measured_from(live: LiveRun) -> float:
    return live.samples[0].at if live.samples else time.time()


def _window(live: LiveRun, low: float, high: float) -> dict:
    samples = [s for s in live.samples if low <= s.at < high]
    probes = [p for p in live.probes if low <= p.sent_at < high]
    return {
        "max_queued_runs": max((s.queued for s in samples), default=0),
        "max_runs_in_progress": max((s.in_progress for s in samples), default=0),
        "failed_runs": max((s.failed for s in samples), default=0),
        "lake": _quantiles([p.lake_s for p in probes]),
        "elasticsearch": _quantiles([p.es_s for p in probes]),
        "cpu_share": round(statistics.fmean(s.cpu_share for s in samples), 3) if samples else None,
        "cpu_share_by_process": {
            name: round(statistics.fmean(s.cpu_by_process.get(name, 0.0) for s in samples), 3)
            for name in (samples[-1].cpu_by_process if samples else {})},
        "peak_rss_gib": max((s.rss_gib for s in samples), default=None),
        # Which process grows over a long run, each at its own peak in the window.
        "peak_rss_gib_by_process": {
            name: max(s.rss_gib_by_process.get(name, 0.0) for s in samples)
            for name in (samples[-1].rss_gib_by_process if samples else {})},
        "micro_batches": _batch_figures([b for b in live.batches.values() if low <= _landed_s(b) < high]),
    }


def _landed_s(batch: dict) -> float:
    return datetime.fromisoformat(batch["landed_at"]).timestamp()


def _batch_figures(batches: list[dict]) -> dict:
    """How many micro-batches landed, their rows, and how long they took (start to batch log)."""
    seconds = sorted(b["seconds"] for b in batches)
    result = {"count": len(batches), "input_rows": sum(b["input_rows"] for b in batches)}
    if seconds:
        result.update(p50_s=round(statistics.median(seconds), 2), max_s=seconds[-1])
        result["max_phase_s"] = {phase: max(b["phase_seconds"].get(phase, 0.0) for b in batches)
                                 for phase in batches[0]["phase_seconds"]}
    return result


def _quantiles(values: list[float | None]) -> dict:
    arrived = sorted(v for v in values if v is not None)
    result = {"probes": len(values), "arrived": len(arrived)}
    if len(arrived) >= 2:
        q = statistics.quantiles(arrived, n=100, method="inclusive")
        result.update(p50_s=round(q[49], 2), p95_s=round(q[94], 2), max_s=arrived[-1])
    elif arrived:
        result.update(p50_s=arrived[0], p95_s=arrived[0], max_s=arrived[0])
    return result


def _ingest_runs(instance: dg.DagsterInstance) -> dict:
    """Launch-to-success seconds of the successful ingest runs (from run creation to its end)."""
    records = instance.get_run_records(dg.RunsFilter(job_name="ingest_job",
                                                     statuses=[dg.DagsterRunStatus.SUCCESS]))
    spans = sorted(r.end_time - r.create_timestamp.timestamp() for r in records if r.end_time)
    if not spans:
        return {"runs": 0}
    return {"runs": len(spans), "p50_s": round(statistics.median(spans), 2),
            "max_s": round(spans[-1], 2), "min_s": round(spans[0], 2)}


def _other_runs(instance: dg.DagsterInstance, start: float) -> list[dict]:
    """The runs beside the ingest (the close schedule's, a sensor's daily runs, retention) in the
    benchmark's own instance, each with its minutes from the measurement's start (negative before
    it): the minutes they overlap read against them. A run still in flight has no end."""
    records = instance.get_run_records(ascending=True)

    def minute(at: float | None) -> float | None:
        return None if at is None else round((at - start) / 60, 2)

    return [{"job": r.dagster_run.job_name, "partition": r.dagster_run.tags.get("dagster/partition"),
             "status": r.dagster_run.status.value, "requested_min": minute(r.create_timestamp.timestamp()),
             "started_min": minute(r.start_time), "ended_min": minute(r.end_time)}
            for r in records if r.dagster_run.job_name != "ingest_job"]


def _percent(share: float | None) -> str:
    """A minute can hold no sample: one sample's Spark query outlasted it on a saturated server."""
    return "-" if share is None else f"{share:.0%}"


def _minute_line(live: LiveRun, low: float, high: float) -> str:
    w = _window(live, low, high)
    es, lake = w["elasticsearch"], w["lake"]
    return (f"queued<={w['max_queued_runs']} running<={w['max_runs_in_progress']} "
            f"failed={w['failed_runs']} lake p95 {lake.get('p95_s', '-')} s, "
            f"ES p95 {es.get('p95_s', '-')} s ({es['arrived']}/{es['probes']}), "
            f"cpu {_percent(w['cpu_share'])}, rss {w['peak_rss_gib']} GiB, micro-batches "
            f"p50 {w['micro_batches'].get('p50_s', '-')} s max {w['micro_batches'].get('max_s', '-')} s")


def markdown(results: dict) -> str:
    o = results["overall"]
    rows = ["| rate | minutes | max queued | max running | failed runs | lake p50 / p95 / max | "
            "Elasticsearch p50 / p95 / max | stack CPU | peak memory | ingest run (p50) |",
            "| ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |"]
    lake, es = o["lake"], o["elasticsearch"]
    rows.append(
        f"| {results['rate_per_s']:g}/s | {results['minutes']:g} | {o['max_queued_runs']} | "
        f"{o['max_runs_in_progress']} | {o['failed_runs']} | "
        f"{lake.get('p50_s', '-')} / {lake.get('p95_s', '-')} / {lake.get('max_s', '-')} s | "
        f"{es.get('p50_s', '-')} / {es.get('p95_s', '-')} / {es.get('max_s', '-')} s "
        f"({es['arrived']}/{es['probes']}) | {o['cpu_share']:.0%} | {o['peak_rss_gib']} GiB | "
        f"{o['ingest_run_s'].get('p50_s', '-')} s |")
    rows.append("\nStack CPU by process (share of all cores): " + ", ".join(
        f"{name} {share:.0%}" for name, share in o["cpu_share_by_process"].items()) + ".")
    rows.append("Peak memory by process: " + ", ".join(
        f"{name} {gib} GiB" for name, gib in o["peak_rss_gib_by_process"].items()) + ".")
    batches = o["micro_batches"]
    rows.append(f"{batches['count']} micro-batches of {batches['input_rows']:,} records: "
                f"p50 {batches.get('p50_s', '-')} s, max {batches.get('max_s', '-')} s.")
    for run in results.get("other_runs", []):
        ran = (f"ran from minute {run['started_min']} to "
               f"{run['ended_min'] if run['ended_min'] is not None else 'the end, and on'}"
               if run["started_min"] is not None else "never started")
        name = " ".join(part for part in (run["job"], run["partition"]) if part)
        rows.append(f"{name} ({run['status'].lower()}): requested at "
                    f"minute {run['requested_min']}, {ran}.")
    backlog = results["backlog_ingest_run"]
    rows.append(f"\nA {backlog['events']:,}-event backlog, landed and refreshed: "
                f"{backlog['request_to_refreshed_s']} s after the ingest run's request, "
                f"{backlog['start_to_refreshed_s']} s after it started.")
    return "\n".join(rows)


def write(results: dict, directory: Path) -> dict[str, Path]:
    """live-latest.json, a timestamped copy and live-latest.png."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = report.file_stamp(results)
    text = json.dumps({**results, "machine": report.machine()}, indent=2)
    paths = {"latest": directory / "live-latest.json",
             "copy": directory / f"live-{results['rate_per_s']:g}-{stamp}.json",
             "chart": directory / "live-latest.png"}
    paths["latest"].write_text(text)
    paths["copy"].write_text(text)
    chart(results, paths["chart"])
    return paths


def chart(results: dict, path: Path) -> None:
    """Per minute: latency to the lake and to Elasticsearch, the run queue, CPU and memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = results["per_minute"]
    x = [m["minute"] for m in minutes]
    fig, (lat, queue, load) = plt.subplots(3, 1, figsize=(9, 7.5), dpi=110, sharex=True)
    for key, label in (("lake", "produce → lake"), ("elasticsearch", "produce → Elasticsearch")):
        lat.plot(x, [m[key].get("p95_s") for m in minutes], marker="o", label=f"{label} p95")
        lat.plot(x, [m[key].get("p50_s") for m in minutes], linestyle="--", label=f"{label} p50")
    lat.set_ylabel("seconds")
    lat.legend(fontsize=7)
    # Minute m is plotted at x = m and covers [m - 1, m) from the start: a run's span shifts by one.
    for run in results.get("other_runs", []):
        if run["started_min"] is None:
            continue
        last = results["minutes"]
        start = min(max(run["started_min"] + 1, 1), last)
        end = last if run["ended_min"] is None else min(max(run["ended_min"] + 1, 1), last)
        lat.axvspan(start, end, color="#999999", alpha=0.15)
        lat.annotate(" ".join(p for p in (run["job"], run["partition"]) if p),
                     (start, 1), xycoords=("data", "axes fraction"), fontsize=6, va="top",
                     rotation=90)
    queue.step(x, [m["max_queued_runs"] for m in minutes], where="mid", label="max queued")
    queue.step(x, [m["max_runs_in_progress"] for m in minutes], where="mid", label="max running")
    queue.step(x, [m["failed_runs"] for m in minutes], where="mid", label="failed (cumulative)")
    queue.set_ylabel("runs")
    queue.legend(fontsize=7)
    load.plot(x, [100 * (m["cpu_share"] or 0) for m in minutes], marker="o", label="stack CPU %")
    memory = load.twinx()
    memory.plot(x, [m["peak_rss_gib"] for m in minutes], color="#c0504d", marker="s",
                label="peak memory GiB")
    for name in minutes[-1].get("peak_rss_gib_by_process", {}) if minutes else ():
        memory.plot(x, [m.get("peak_rss_gib_by_process", {}).get(name) for m in minutes],
                    linewidth=0.8, linestyle=":", label=f"{name} GiB")
    memory.legend(fontsize=6, loc="lower right")
    load.set_ylabel("CPU % of all cores")
    memory.set_ylabel("GiB")
    load.set_xlabel("minute")
    fig.suptitle(f"clickstream bench live: {results['rate_per_s']:g} events/s for "
                 f"{results['minutes']:g} min", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(child: subprocess.Popen, grace_s: float = 30) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the child's process group, until none of it is left.
    The runs `dagster dev` launched are in that group and may outlive it by a micro-batch: one
    still stopping would commit to the next benchmark's freshly reset topic and lake."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            child.poll()  # the leader's exit status, so that it leaves the group
            try:
                os.killpg(child.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
