"""One way to build a SparkSession, used by Dagster resources, the CLI and spark-submit mains.

Two kinds of session run the same code: a client of a long-lived Spark Connect server (the
default: no JVM starts per run), or an in-process Spark. Nothing in spark/ reaches the JVM
directly, so every job works through either.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyspark.sql import SparkSession

from config.settings import Settings, mark_connect_client

# Settings that hold on a laptop and on a cluster alike; sizes come from the caller.
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.sql.adaptive.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
    # This rule rewrites every field read of a from_json struct into its own pruned from_json, so
    # a query that reads many fields of one parsed column parses it once per field.
    "spark.sql.optimizer.enableJsonExpressionOptimization": "false",
    # pyspark's Python worker daemon, less a per-task re-read of zip archives (see the module).
    "spark.python.daemon.module": "spark.worker_daemon",
    # A long-lived server runs more distinct generated classes than Spark's default cache of 100
    # holds (each micro-batch, commit and live refresh brings its own), so it kept compiling and
    # JIT-compiling them again (docs/benchmarks.md, 2026-12-08).
    "spark.sql.codegen.cache.maxEntries": "1000",
}

# The lake is Delta Lake: Parquet files plus a transaction log (atomic day swaps, idempotent
# micro-batch appends, conflict detection, time travel).
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Streaming state (dedup keys) lives in RocksDB: off-heap, bounded memory, fast recovery.
STREAMING_CONF = {
    "spark.sql.streaming.stateStore.providerClass":
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    # Counting the state's rows costs a read before every write; the dedup only ever needs the
    # read it does itself.
    "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows": "false",
    # One memory budget (500 MB by default) for every RocksDB instance of the process: without
    # it, each instance grows its own caches, and a long ingest's peak memory is left to chance.
    "spark.sql.streaming.stateStore.rocksdb.boundedMemoryUsage": "true",
}


# A long-lived server caches a Kafka producer per set of client settings, and one whose broker is
# gone (a run against another cluster, a stopped test broker) retries it until it is evicted.
KAFKA_CLIENT_CONF = {"spark.kafka.producer.cache.timeout": "2m"}


# A lake or checkpoint on local disk goes through Hadoop's local file system, which without
# Hadoop's native library forks a `chmod` for every file it creates and, through FileContext, a
# `readlink` for both sides of every rename. Delta's commits rename through FileContext: its raw
# local implementation skips the `.crc` twin's renames and their lookups, and the ingest's
# checkpoint manager renames through FileSystem (spark/ingest/checkpoint.py). FileSystem itself
# stays Hadoop's checksummed LocalFileSystem: RocksDB uploads its state snapshots with
# `copyFromLocalFile`, which casts the local file system to that class, and with the raw one every
# upload failed, so changelogs were never cleaned and each restart replayed all of them. Both
# settings touch only `file:` paths; HDFS, s3a and the rest keep Hadoop's and Spark's defaults.
LOCAL_DISK_CONF = {
    "spark.hadoop.fs.AbstractFileSystem.file.impl": "org.apache.hadoop.fs.local.RawLocalFs",
}


def pipeline_conf(master: str, shuffle_partitions: int, cores: int | None = None) -> dict[str, str]:
    """Everything the pipeline's Spark needs, for an in-process session or a Connect server.
    `cores`: the executors' cores in all, where the master URL does not say."""
    conf = {**BASE_CONF, **DELTA_CONF, **STREAMING_CONF, **LOCAL_DISK_CONF, **KAFKA_CLIENT_CONF,
            # Spark's default of 200 suits a cluster; on a few cores each of those tasks is pure
            # overhead.
            "spark.sql.shuffle.partitions": str(shuffle_partitions)}
    local = re.fullmatch(r"local\[(\d+|\*)(,\d+)?\]|local", master)
    if local:
        given = local.group(1) if local.group(1) and local.group(1) != "*" else None
        cores = int(given or os.cpu_count() or 1)
    if cores:  # readable through spark.conf, which Connect clients have (sparkContext they lack)
        conf["spark.default.parallelism"] = str(cores)
        # Delta rebuilds a table's snapshot from its log in 50 tasks by default, sized for a
        # cluster; every read and commit of a small live table paid for 50 tasks on a few cores.
        conf["spark.databricks.delta.snapshotPartitions"] = str(cores)
    return conf


def settings_conf(settings: Settings) -> dict[str, str]:
    """`pipeline_conf` for `settings`' master. On the standalone cluster `stack up` starts on
    loopback, executors are sized as its workers and reach the driver on loopback."""
    if not settings.spark_cluster_is_local:
        return pipeline_conf(settings.spark_master, settings.spark_shuffle_partitions)
    return {**pipeline_conf(settings.spark_master, settings.spark_shuffle_partitions,
                            settings.spark_workers * settings.spark_worker_cores),
            "spark.executor.memory": settings.spark_worker_memory,
            "spark.executor.cores": str(settings.spark_worker_cores),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1"}


# The retry policy's waits also bound gRPC's own reconnects, which back off up to 2 minutes: a
# client whose server had been down long kept failing on a stale "refused" after it was back.
FIRST_RETRY_WAIT_MS, LONGEST_RETRY_WAIT_MS = 50, 5_000


def connect(remote: str, retry_s: float, *, shared: bool = False) -> SparkSession:
    """A client of the Connect server at `remote` whose calls give up after about `retry_s` of
    retries, so a dead server fails the work instead of hanging it. `shared`: the process's
    default session (getOrCreate), else one of the caller's own."""
    from pyspark.sql.connect.client import DefaultChannelBuilder
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    channel = DefaultChannelBuilder(remote, channelOptions=[
        ("grpc.initial_reconnect_backoff_ms", FIRST_RETRY_WAIT_MS),
        ("grpc.max_reconnect_backoff_ms", LONGEST_RETRY_WAIT_MS)])
    builder = ConnectSession.builder.channelBuilder(channel)
    mark_connect_client()
    session = builder.getOrCreate() if shared else builder.create()
    session.client.set_retry_policies([retry_policy(retry_s)])
    _bound_interrupts(session.client)
    return session


def _bound_interrupts(client) -> None:
    """An interrupted client (Ctrl-C, SIGTERM) asks the server to interrupt its operation, with a
    call that has no deadline: on a server that hangs, it held the process for good. The request
    now gets INTERRUPT_S, then the interrupt goes on up."""
    interrupt = client.interrupt_operation
    client.interrupt_operation = lambda operation_id: within(
        INTERRUPT_S, lambda: interrupt(operation_id))


# How long a client that is on its way out (interrupted, failing) still waits for its server.
GIVING_UP_RETRY_S = 3
INTERRUPT_S = 5


def within(seconds: float, call: Callable[[], object]) -> bool:
    """Run `call` (a clean-up on the way out) in a thread of its own, and wait for it at most
    `seconds`: a Connect call to a server that hangs, rather than refuses, has no deadline, and
    must not hold the process. True if it finished without an error."""
    outcome: list[bool] = []

    def run() -> None:
        try:
            call()
            outcome.append(True)
        except Exception:  # the clean-up of a client whose server is gone: nothing to add
            outcome.append(False)

    worker = threading.Thread(target=run, name="spark-clean-up", daemon=True)
    worker.start()
    worker.join(seconds)
    return outcome == [True]


def give_up_fast(session: SparkSession) -> None:
    """From now on the session's calls wait for a dead server only briefly (Connect clients; an
    in-process session has no server to wait for)."""
    client = getattr(session, "client", None)
    if client is not None and hasattr(client, "set_retry_policies"):
        client.set_retry_policies([retry_policy(GIVING_UP_RETRY_S)])


class SparkServerUnavailable(RuntimeError):
    """The Spark Connect server did not answer within the client's retry budget, or restarted and
    no longer knows the client's session."""


# Errors of a session whose server restarted (its sessions live in the server's memory); once
# one call has seen it, pyspark closes the client, and every later call finds no session.
SESSION_LOST = {"INVALID_HANDLE.SESSION_CHANGED", "INVALID_HANDLE.SESSION_NOT_FOUND",
                "NO_ACTIVE_SESSION",
                # an operation the client was reading from, unknown to the restarted server
                "RESPONSE_ALREADY_RECEIVED"}


@contextmanager
def naming_the_server(remote: str | None, retry_s: float) -> Iterator[None]:
    """A Connect call that ran out of retries fails with the server's address and what to do,
    instead of pyspark's bare RETRIES_EXCEEDED."""
    try:
        yield
    except Exception as exc:
        error_class = getattr(exc, "getCondition", lambda: None)()
        resume = "the lake's checkpoint keeps the position, so the next ingest resumes exactly there"
        if remote and error_class == "RETRIES_EXCEEDED":
            cause = str(exc.__cause__ or exc).split("details = ")[-1].split("\n")[0].strip('" ')
            raise SparkServerUnavailable(
                f"the Spark Connect server at {remote} did not answer for {retry_s:g} s ({cause}). "
                f"Start it with `make up` (`clickstream stack up`), or point "
                f"CLICKSTREAM_SPARK_REMOTE at one that runs; {resume}.") from exc
        if remote and error_class in SESSION_LOST:
            raise SparkServerUnavailable(
                f"the Spark Connect server at {remote} restarted, and this client's session went "
                f"with it ({error_class}). Run again (the ingest sensor retries on its own); "
                f"{resume}.") from exc
        raise


def retry_policy(budget_s: float):
    """pyspark's default retry policy (backoff from 50 ms, times 4, jitter), with as many retries
    as fit in `budget_s` of waiting, each wait at most 5 s."""
    from pyspark.sql.connect.client.retries import DefaultPolicy

    longest_ms, wait_ms, waited_ms, retries = LONGEST_RETRY_WAIT_MS, FIRST_RETRY_WAIT_MS, 0, 0
    while waited_ms + min(wait_ms, longest_ms) <= budget_s * 1000:
        waited_ms += min(wait_ms, longest_ms)
        wait_ms *= 4
        retries += 1
    return DefaultPolicy(max_retries=retries, max_backoff=longest_ms)


def build_session(
    app_name: str,
    *,
    remote: str | None = None,
    retry_s: float = 30.0,
    master: str | None = None,
    driver_memory: str | None = None,
    jars: list[str] | None = None,
    conf: dict[str, str] | None = None,
) -> SparkSession:
    """A client of the Connect server at `remote` (giving up after `retry_s` of retries), or else
    an in-process session."""
    if remote:
        session = connect(remote, retry_s, shared=True)
        for key, value in (conf or {}).items():
            session.conf.set(key, value)
        return session
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    if driver_memory:
        builder = builder.config("spark.driver.memory", driver_memory)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    for key, value in {**BASE_CONF, **DELTA_CONF, **(conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if master is None or master.startswith("local"):
        # The ingest's enrichment UDFs run in Python workers, which need this environment's
        # packages (pandas, ua-parser), not the `python3` on PATH that pyspark defaults to; a
        # cluster's executors get theirs from PYSPARK_PYTHON.
        session.sparkContext.pythonExec = sys.executable
    session.sparkContext.setLogLevel("WARN")
    return session


def stop_session(session: SparkSession) -> None:
    """Stop a session for good.

    pyspark 4.0's Connect clients share one release thread pool per process, and closing any
    client shuts it down. A stopped session closes its client again when it is garbage-collected,
    which can land in the middle of another session's query and fail it with "cannot schedule new
    futures after shutdown". Where one process runs many sessions (runs executed in process, the
    tests), a stopped session's client therefore closes once only.
    """
    session.stop()
    client = getattr(session, "client", None)  # Connect sessions only
    if client is not None:
        client.close = lambda: None


def parallelism(spark: SparkSession) -> int:
    """Cores the jobs can spread over: spark.default.parallelism, else the shuffle partitions."""
    value = spark.conf.get("spark.default.parallelism", None)
    return int(value or spark.conf.get("spark.sql.shuffle.partitions"))


@contextmanager
def scoped_conf(spark: SparkSession, overrides: dict[str, str]) -> Iterator[None]:
    """Session settings for the work inside the block, restored after it for whatever else shares
    the session."""
    previous = {key: spark.conf.get(key, None) for key in overrides}
    for key, value in overrides.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
