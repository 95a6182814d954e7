"""The streaming ingest job: Kafka -> contract -> dedup -> landing lake, dead-letter topic and
bad-rows table, with a statistics record per micro-batch.

One query reads the topic once. Each micro-batch is written by `BatchWriter`, which appends to the
Delta tables with the checkpoint's query id and the batch id as Delta's idempotent-write
transaction, so a batch that Spark replays after a crash is written once: rows land exactly once.
The writer is a plain picklable object: over Spark Connect it runs on the server's Python worker,
and reaches Spark only through the micro-batch's own session.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pyspark import StorageLevel
from pyspark.errors.exceptions.connect import SparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from ..delta_lake import (
    LANDING_PROPERTIES,
    LANDING_STATISTICS,
    append_batch,
    partition_columns,
    set_missing_properties,
)
from ..session import GIVING_UP_RETRY_S, give_up_fast, scoped_conf, within
from . import checkpoint, consumer_group
from .batch_log import BATCH_LOG_SCHEMA, BatchStats, batch_log_rows, newest_batch
from .config import AVAILABLE_NOW, CONTINUOUS, IngestConfig
from .event_pass import HELD_BACK
from .transform import (
    HOUR_PARTITION,
    LANDING_PARTITIONS,
    flat_events,
    held_back,
    refilled,
    to_bad_rows,
    to_dead_letter_messages,
    to_lake_rows,
    with_held_back_payloads,
)

# Session settings of the ingest's query (a clone of the session taken at its start, so they reach
# its micro-batches and nobody else's). The landing zone is transient, rewritten per day with zstd
# by compaction, so it favours write speed: lz4 and no dictionaries (most columns are nearly unique
# per batch). Concurrent writers skip the per-task sort by partition, and the micro-batch is cached
# as plain columns, which compressing cost as much as the dedup. docs/benchmarks.md has the
# measurements.
INGEST_CONF = {"spark.sql.maxConcurrentOutputFileWriters": "64",
               # What a Python worker's Arrow batch may hold, whatever the records' sizes.
               "spark.sql.execution.arrow.maxBytesPerBatch": str(64 * 1024**2),
               "spark.sql.inMemoryColumnarStorage.compressed": "false",
               "spark.sql.parquet.compression.codec": "lz4_raw",
               "parquet.enable.dictionary": "false"}

# An interrupted streaming run waits this long for its micro-batch in flight before it stops it.
STOP_WAIT_INTERRUPTED_S = 10

# The server gives the Python worker that runs `BatchWriter` a fixed 10 s to start and connect
# back; a loaded driver can miss that, several times in a row. No query exists then, so starting
# again is safe; the pauses double, so a busy spell of a minute or more is waited out.
WORKER_NOT_BACK = "Python worker failed to connect back"
STARTS_WHEN_THE_WORKER_IS_LATE = 5
WAIT_BEFORE_NEXT_START_S = 2.0

log = logging.getLogger(__name__)

# Bad-rows files of a micro-batch with held-back (oversized) records stay this short.
HELD_BACK_ROWS_PER_FILE = 64


class IngestJob:
    """run() = _read -> _transform -> _write; the trigger and checkpoint come from the config."""

    def __init__(self, spark: SparkSession, config: IngestConfig):
        self.spark = spark
        self.config = config
        self.query = None
        # Micro-batches this query run has run, as seen in its progress (which keeps only the
        # newest 100): a long streaming run reports every batch it ran, not just the last 100.
        self._seen: set[int] = set()

    def run(self, timeout_s: float | None = None) -> list[BatchStats]:
        """Start the query; in available-now mode return once everything new is in the lake."""
        self.wait(timeout_s)
        batches = self.batches
        self.publish_position(batches[-1] if batches else None)
        return batches

    def publish_position(self, newest: BatchStats | None = None) -> None:
        """Commit the newest logged batch's end offsets to the consumer group: each batch does so
        itself, and this catches up one whose run died between its Delta and group commits."""
        newest = newest or newest_batch(self.spark, self.config.lake_root)
        if newest is not None:
            consumer_group.publish(self.config, newest.end_offsets)

    def wait(self, timeout_s: float | None = None) -> None:
        """Start the query and wait until it ends (available-now: everything new is in the lake)."""
        query = self.start()
        try:
            query.awaitTermination(timeout_s) if timeout_s else query.awaitTermination()
        except BaseException:
            self._stop_on_the_way_out()
            raise
        if query.isActive:
            query.stop()

    def stream(self, seconds: float, idle_s: float, after_batches: Callable[[list], None],
               poll_s: float = 0.5) -> None:
        """Continuous mode, bounded: run the query and call `after_batches` with the progress of
        the micro-batches that brought records, as they commit. Stops between two micro-batches
        after `seconds`, or once `idle_s` passed without a record; a query failure is raised."""
        query = self.start()
        started = last_records = time.monotonic()
        try:
            while query.isActive:
                brought = self._new_progress()
                if brought:
                    after_batches(brought)
                    # Quiet time counts from when the records were served, not when they came.
                    last_records = time.monotonic()
                now = time.monotonic()
                if now - last_records >= idle_s and (query.lastProgress is None
                                                     or query.status["isTriggerActive"]):
                    # A query starting or a micro-batch in flight is not a quiet topic: the first
                    # batch of a run, on a backlog or a cold server, can outlast the idle time.
                    last_records = now
                if now - started >= seconds or now - last_records >= idle_s:
                    break
                time.sleep(poll_s)
        except BaseException:
            self._stop_on_the_way_out()
            raise
        self.stop_between_batches()
        # Raises the query's own error if it failed; returns at once after a stop.
        query.awaitTermination()

    def _stop_on_the_way_out(self) -> None:
        """Interrupted (SIGTERM, Ctrl-C) or failed: stop the query if the server still answers,
        within seconds whatever its state, and never raise over the error that got us here."""
        give_up_fast(self.spark)
        within(STOP_WAIT_INTERRUPTED_S + 2 * GIVING_UP_RETRY_S,
               lambda: self.stop_between_batches(timeout_s=STOP_WAIT_INTERRUPTED_S))

    def stop_between_batches(self, timeout_s: float = 60) -> None:
        """Stop the query once no micro-batch is in flight. A batch cut short would be replayed
        exactly once by the next run, but its dead letters would reach the topic twice."""
        query = self.query
        deadline = time.monotonic() + timeout_s
        while query.isActive and query.status["isTriggerActive"] and time.monotonic() < deadline:
            time.sleep(0.1)
        if query.isActive:
            query.stop()

    def start(self):
        """Start without waiting (continuous mode from a long-lived process)."""
        # A query runs on a clone of the session taken at start, so these settings reach its
        # batches but are restored for whatever else shares the session (a daily run's compaction).
        overrides = {**INGEST_CONF, **checkpoint.file_manager_conf(self.config.checkpoint),
                     "spark.sql.shuffle.partitions": str(self.config.state_partitions)}
        # A no-data micro-batch only advances the dedup watermark; it cost a trigger and a
        # batch-log commit after every batch with data, and the next batch with data does it.
        overrides["spark.sql.streaming.noDataMicroBatches.enabled"] = "false"
        # The change feed stays as the live path set it: it is not turned on behind its back.
        set_missing_properties(self.spark, self.config.landing, LANDING_STATISTICS)
        with scoped_conf(self.spark, overrides):
            self.query = self._write(self._transform(self._read()))
        return self.query

    @property
    def batches(self) -> list[BatchStats]:
        """The micro-batches this query run has committed, from the batch log each one wrote."""
        if self.query is None:
            return []
        ran = self._ran()
        if not ran:
            return []
        return [BatchStats.from_json(row.stats) for row in batch_log_rows(
            self.spark, self.config.lake_root, query_id=str(self.query.id), first_batch=min(ran))]

    def batches_since(self, started_after: str | None) -> tuple[list[BatchStats], list[BatchStats]]:
        """One read of the batch log from `started_after` on (all of it for None): this query
        run's micro-batches, and those of other runs, oldest first."""
        # A checkpoint keeps its query id across runs; this run's batches are its ids from the
        # first one it ran on (progress keeps only the newest 100, so not a set of ids).
        ran, own_id = self._ran(), str(self.query.id) if self.query else None
        first = min(ran, default=None)
        own: list[BatchStats] = []
        others: list[BatchStats] = []
        for row in batch_log_rows(self.spark, self.config.lake_root, started_after=started_after):
            mine = first is not None and row.query_id == own_id and row.batch_id >= first
            (own if mine else others).append(BatchStats.from_json(row.stats))
        return own, others

    def _new_progress(self) -> list:
        """Progress of the micro-batches run since the last call."""
        fresh = [p for p in self.query.recentProgress if p.numInputRows and p.batchId not in self._seen]
        self._seen.update(p.batchId for p in fresh)
        return fresh

    def _ran(self) -> list[int]:
        if self.query is None:
            return []
        return sorted(self._seen | {progress.batchId for progress in self.query.recentProgress})

    def _read(self) -> DataFrame:
        reader = (
            self.spark.readStream.format("kafka")
            .options(**self.config.spark_kafka_options)
            .option("subscribe", self.config.topic)
            .option("startingOffsets", self.config.starting_offsets)
            # Offsets deleted by retention must fail loudly, never be skipped silently.
            .option("failOnDataLoss", "true")
        )
        if self.config.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(self.config.max_offsets_per_trigger))
        return reader.load()

    def _transform(self, kafka_rows: DataFrame) -> DataFrame:
        # The watermark is on ingest time, not event time: duplicates re-delivered within the
        # window are dropped, while an event that is hours late is never older than the watermark
        # and so is kept, landing in its own event_date partition.
        # Flatten before the dedup shuffle: only narrow typed rows (and raw bytes of dead letters)
        # cross it, not each record's raw bytes plus its parsed struct.
        return (
            flat_events(kafka_rows, first_day=self.config.first_day,
                        future_days=self.config.future_days, ip_mode=self.config.ip_anonymization,
                        oversized_bytes_kept=self.config.oversized_bytes_kept)
            .withWatermark("ingested_at", self.config.dedup_watermark)
            .dropDuplicatesWithinWatermark(["dedup_key"])
        )

    def _write(self, events: DataFrame):
        writer = (
            events.writeStream.queryName(f"clickstream-ingest-{self.config.topic}")
            .option("checkpointLocation", self.config.checkpoint)
            .foreachBatch(BatchWriter(self.config, hourly=HOUR_PARTITION in partition_columns(
                self.spark, self.config.landing)))
        )
        if self.config.mode == AVAILABLE_NOW:
            writer = writer.trigger(availableNow=True)
        elif self.config.mode == CONTINUOUS:
            writer = writer.trigger(processingTime=self.config.processing_time)
        else:
            raise ValueError(f"unknown mode {self.config.mode!r}: use {AVAILABLE_NOW} or {CONTINUOUS}")
        return start_past_a_late_worker(writer)


def start_past_a_late_worker(writer, attempts: int = STARTS_WHEN_THE_WORKER_IS_LATE,
                             wait_s: float = WAIT_BEFORE_NEXT_START_S):
    """`writer.start()`, started again when the server's foreachBatch worker missed its time to
    connect back, after `wait_s`, then twice as long each time; any other error, or the last
    attempt's, is raised as it came."""
    for attempt in range(1, attempts + 1):
        try:
            return writer.start()
        except SparkException as exc:
            if WORKER_NOT_BACK not in str(exc) or attempt == attempts:
                raise
            pause = wait_s * 2 ** (attempt - 1)
            log.warning("the Spark server's Python worker for the ingest's micro-batches did not "
                        "connect back in time (attempt %d of %d); starting the query again in "
                        "%g s", attempt, attempts, pause)
            time.sleep(pause)


class BatchWriter:
    """Publishes one micro-batch to the landing lake, the bad-rows table, the dead-letter topic and
    the batch log, then commits its end offsets to the consumer group. Errors propagate: the query
    fails, and nothing is lost."""

    def __init__(self, config: IngestConfig, hourly: bool = False):
        self.config = config
        self.hourly = hourly  # the landing is partitioned by event_hour too (see to_lake_rows)
        self._query_id: str | None = None
        # The previous batch's end offsets, when this process ran it: the next batch's start.
        self._previous: tuple[int, dict[str, int]] | None = None

    def __call__(self, events: DataFrame, batch_id: int) -> None:
        spark = events.sparkSession
        started = time.monotonic()
        started_at = datetime.now(UTC).isoformat(timespec="milliseconds")
        # Delta's idempotent-write id: the checkpoint's query id survives restarts of the query, and
        # a new checkpoint gets a new one, so its batch 0 is never mistaken for the old batch 0.
        app_id = self._app_id(spark)
        events = events.persist(StorageLevel.MEMORY_AND_DISK)
        bad_rows = None
        try:
            counts = events.groupBy(
                F.col("error").isNull().alias("valid"),
                F.when(F.col("error").isNull(), F.to_date("event_ts").cast("string"))
                .otherwise(F.split("error", ":")[0]).alias("bucket"),
            ).count().collect()
            phases = {"read_parse_dedup": time.monotonic() - started}
            per_date = {r["bucket"]: r["count"] for r in counts if r["valid"]}
            per_reason = {r["bucket"]: r["count"] for r in counts if not r["valid"]}
            # No DESCRIBE HISTORY for the commit's file count and size: a query per micro-batch on
            # the live path's critical path, for figures no reader used.
            if per_date:
                append_batch(to_lake_rows(events, self.hourly), self.config.landing, app_id,
                             batch_id, LANDING_PARTITIONS + [HOUR_PARTITION] * self.hourly,
                             LANDING_PROPERTIES)
            phases["landing"] = time.monotonic() - started - sum(phases.values())
            landed_at = datetime.now(UTC).isoformat(timespec="milliseconds")
            if per_reason:
                found, rows_per_file = to_bad_rows(events), None
                held = _detached(held_back(found)) if per_reason.get(
                    HELD_BACK.removesuffix(":")) else None
                if held is not None:
                    found = with_held_back_payloads(found, refilled(held, self._records_at(held)))
                    # A reader holds a file's rows a batch at a time: of these, no more than
                    # Kafka's 1 MB limit times this.
                    rows_per_file = HELD_BACK_ROWS_PER_FILE
                # Both writes read the dead letters, which the first one puts on disk: the cached
                # batch is scanned and the held-back records read from the topic once. On disk,
                # since a read-back record can hold 1 MB.
                bad_rows = found.persist(StorageLevel.DISK_ONLY)
                append_batch(bad_rows, self.config.bad_rows, app_id, batch_id, ["ingest_date"],
                             max_rows_per_file=rows_per_file)
                self._send_dead_letters(to_dead_letter_messages(bad_rows))
            phases["dead_letters"] = time.monotonic() - started - sum(phases.values())
        finally:
            events.unpersist()
            if bad_rows is not None:
                bad_rows.unpersist()
        start, end = self._offset_range(spark, batch_id)
        input_rows = sum(end[p] - start.get(p, 0) for p in end)
        landed, dead = sum(per_date.values()), sum(per_reason.values())
        stats = BatchStats(
            batch_id=batch_id,
            started_at=started_at,
            landed_at=landed_at,
            seconds=round(time.monotonic() - started, 3),
            start_offsets=start,
            end_offsets=end,
            input_rows=input_rows,
            landing_rows=landed,
            dead_letters=dead,
            duplicates_removed=input_rows - landed - dead,
            rows_per_event_date=dict(sorted(per_date.items())),
            dead_letters_per_reason=dict(sorted(per_reason.items())),
            phase_seconds={k: round(v, 3) for k, v in phases.items()},
        )
        record = spark.createDataFrame([(app_id, batch_id, started_at, stats.to_json())],
                                       BATCH_LOG_SCHEMA)
        append_batch(record, self.config.batch_log, app_id, batch_id, [])
        consumer_group.publish(self.config, end)
        self._previous = (batch_id, end)

    def _app_id(self, spark: SparkSession) -> str:
        if self._query_id is None:
            self._query_id = checkpoint.query_id(spark, self.config.checkpoint)
        return self._query_id

    def _records_at(self, rows: DataFrame) -> DataFrame:
        """The topic's records over the offsets of `rows`, read back by a batch query."""
        ranges = rows.groupBy("kafka_partition").agg(F.min("kafka_offset").alias("first"),
                                                     F.max("kafka_offset").alias("last")).collect()
        topic = self.config.topic
        return (rows.sparkSession.read.format("kafka")
                .options(**self.config.spark_kafka_options)
                .option("assign", json.dumps({topic: [r["kafka_partition"] for r in ranges]}))
                .option("startingOffsets", json.dumps(
                    {topic: {str(r["kafka_partition"]): r["first"] for r in ranges}}))
                .option("endingOffsets", json.dumps(
                    {topic: {str(r["kafka_partition"]): r["last"] + 1 for r in ranges}}))
                .option("failOnDataLoss", "true")
                .load())

    def _send_dead_letters(self, messages: DataFrame) -> None:
        (messages.write.format("kafka")
         .options(**self.config.spark_kafka_options)
         .option("topic", self.config.dlq_topic)
         .option("kafka.enable.idempotence", "true")
         .option("kafka.acks", "all")
         .save())

    def _offset_range(self, spark: SparkSession, batch_id: int
                      ) -> tuple[dict[str, int], dict[str, int]]:
        """Exact input offsets of a batch, from the checkpoint's offset log."""
        end = self._logged_offsets(spark, batch_id)
        start = self._previous[1] if self._previous and self._previous[0] == batch_id - 1 else None
        if start is None and batch_id > 0:
            start = self._logged_offsets(spark, batch_id - 1)
        if start is None:  # the first batch starts where the topic's retained data starts
            start = self._earliest_offsets(list(end))
        return start, end

    def _logged_offsets(self, spark: SparkSession, batch_id: int) -> dict[str, int]:
        return checkpoint.logged_offsets(spark, self.config.checkpoint, self.config.topic, batch_id)

    def _earliest_offsets(self, partitions: list[str]) -> dict[str, int]:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(self.config.client_config(**{"group.id": "clickstream-ingest-offsets"}))
        try:
            return {p: consumer.get_watermark_offsets(
                TopicPartition(self.config.topic, int(p)), timeout=10)[0] for p in partitions}
        finally:
            consumer.close()


def _detached(rows: DataFrame) -> DataFrame | None:
    """Few rows of a micro-batch as a plan of their own, collected; None when there are none. A
    plan that reads the cached micro-batch twice gets the cache for one of the two reads only: the
    other computes the batch again, its dedup included."""
    collected = rows.collect()
    return rows.sparkSession.createDataFrame(collected, rows.schema) if collected else None
