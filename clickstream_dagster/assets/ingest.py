"""The source end of the graph: the Kafka topic, and the streaming ingest into the landing lake."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
from elasticsearch import ApiError, TransportError
from pydantic import Field

from config.defaults import DEFAULT_INGEST_IDLE_S, DEFAULT_INGEST_REPORT_S, DEFAULT_INGEST_TRIGGER_S
from spark.delta_lake import table_columns
from spark.ingest import stream, transform
from spark.ingest.batch_log import BatchStats
from spark.ingest.config import AVAILABLE_NOW, CONTINUOUS, IngestConfig
from spark.ingest.stream import IngestJob
from spark.session import naming_the_server

from ..live.refresh import LIVE_INDICES, LiveRefresh
from ..partitions import FIRST_DAY, FUTURE_DAYS, LIVE_FRESHNESS
from ..resources import ElasticsearchResource, KafkaResource, LakeResource, SparkResource
from .metadata import OWNERS, asset_tags, code_version, table_schema

clickstream_topic = dg.AssetSpec(
    "clickstream_topic",
    description="Raw web events in the clickstream Kafka topic, keyed by user_id (external).",
    group_name="ingest",
    kinds={"kafka"},
)


class IngestRunConfig(dg.Config):
    """Per-run ingest settings; the defaults are the ingest job's own (spark/ingest/config.py)."""

    max_offsets_per_trigger: int = IngestConfig.max_offsets_per_trigger
    dedup_watermark: str = IngestConfig.dedup_watermark
    stream_seconds: int = Field(
        0, description="0: take what is on the topic and stop (available-now). Above 0: keep the "
                       "query running for up to this long, landing a micro-batch every "
                       "trigger_seconds and refreshing the open days' live documents after each; "
                       "the Kafka sensor's runs do this (CLICKSTREAM_INGEST_STREAM_S).")
    trigger_seconds: float = Field(DEFAULT_INGEST_TRIGGER_S, description=(
        "Streaming runs: seconds between micro-batches (CLICKSTREAM_INGEST_TRIGGER_S)."))
    idle_seconds: int = Field(DEFAULT_INGEST_IDLE_S, description=(
        "Streaming runs: end once the topic has been quiet this long; the sensor starts the next "
        "on new data (CLICKSTREAM_INGEST_IDLE_S)."))
    report_seconds: int = Field(DEFAULT_INGEST_REPORT_S, description=(
        "Streaming runs: record what the lake gained (changed days, counts, dead letters) as a "
        "clickstream_landing materialization at least this often, so late data for closed days "
        "reaches the partition sensor while the run goes on (CLICKSTREAM_INGEST_REPORT_S)."))


# Two ingests must never share the checkpoint. The instance template limits this pool to one run
# at a time, and the step itself refuses to run beside another, so a bare `dagster dev` or
# `dg dev`, whose instance has no limits, is safe too.
INGEST_POOL = "clickstream_ingest"
INGEST_JOB = "ingest_job"


@dg.asset(deps=[clickstream_topic], group_name="ingest", kinds={"spark", "delta"},
          freshness_policy=LIVE_FRESHNESS, pool=INGEST_POOL, owners=OWNERS, tags=asset_tags("ingest"),
          code_version=code_version(stream, transform))
def clickstream_landing(context: dg.AssetExecutionContext, config: IngestRunConfig,
                        kafka: KafkaResource, lake: LakeResource, spark: SparkResource,
                        elasticsearch: ElasticsearchResource) -> dg.MaterializeResult:
    """Everything new on the topic, validated and deduplicated into the landing lake."""
    _refuse_beside_another_ingest(context)
    job_config = IngestConfig(
        bootstrap_servers=kafka.bootstrap_servers, lake_root=lake.root, topic=kafka.topic,
        dlq_topic=kafka.dlq_topic, consumer_group=kafka.consumer_group,
        mode=CONTINUOUS if config.stream_seconds else AVAILABLE_NOW,
        processing_time=f"{config.trigger_seconds:g} seconds",
        max_offsets_per_trigger=config.max_offsets_per_trigger,
        dedup_watermark=config.dedup_watermark, first_day=FIRST_DAY, future_days=FUTURE_DAYS,
        ip_anonymization=lake.ip_anonymization, kafka_security=kafka.security(),
    )
    started = time.monotonic()
    session = spark.get_session()
    ingest = IngestJob(session, job_config)
    report = LandingReport(context, ingest, session, lake.landing)
    with (_explained_lake_errors(lake.root),
          naming_the_server(spark.spark_config.get("spark.remote"), spark.connect_retry_s)):
        if config.stream_seconds:
            _stream(context, ingest, config, report, LiveRefresh(
                context.log, context.run.run_id, context.instance, session, lake, elasticsearch))
        else:
            ingest.wait()
    # Batches in the lake's log that no materialization reported: a run that committed some and
    # then failed or was killed reports nothing, but its rows are in the lake. Changed days come
    # from the lake itself, so none is ever left without its recompute.
    metadata, newest = report.since_last()
    ingest.publish_position(newest)
    context.log.info(f"{report.records:,} records in {report.micro_batches} micro-batches over "
                     f"{time.monotonic() - started:.0f} s, {report.reports} report(s); changed "
                     f"days: {sorted(report.changed_days)}")
    return dg.MaterializeResult(metadata=metadata)


class LandingReport:
    """What the lake gained, as `clickstream_landing` materialization metadata: the micro-batches
    of the batch log since the last report, by this run or by one that never reported them. A
    streaming run reports every `report_seconds`, so late data reaches the partition sensor while
    the run goes on; every run reports what is left at its end."""

    def __init__(self, context: dg.AssetExecutionContext, ingest: IngestJob, session, landing: str):
        self._context, self._ingest, self._session, self._landing = context, ingest, session, landing
        self.through = _reported_through(context)
        self.reported_at = time.monotonic()
        self.reports = self.micro_batches = self.records = 0
        self.changed_days: set[str] = set()
        self._columns: dict[str, str] | None = None

    def due(self, every_s: float) -> bool:
        return time.monotonic() - self.reported_at >= every_s

    def during_run(self) -> None:
        """Record what the lake gained so far as a materialization, if it gained anything."""
        metadata, newest = self.since_last()
        if newest is not None:
            self._context.log_event(dg.AssetMaterialization(clickstream_landing.key,
                                                            metadata=metadata))

    def since_last(self) -> tuple[dict, BatchStats | None]:
        """The metadata of the batches since the last report, and the newest of them."""
        seconds = time.monotonic() - self.reported_at
        batches, recovered = self._ingest.batches_since(self.through)
        rows_per_day: dict[str, int] = {}
        reasons: dict[str, int] = {}
        for batch in batches:
            for day, rows in batch.rows_per_event_date.items():
                rows_per_day[day] = rows_per_day.get(day, 0) + rows
            for reason, rows in batch.dead_letters_per_reason.items():
                reasons[reason] = reasons.get(reason, 0) + rows
        consumed = sum(b.input_rows for b in batches)
        recovered_days = sorted({day for batch in recovered for day, rows in
                                 batch.rows_per_event_date.items() if rows})
        changed = sorted({*recovered_days, *(day for day, rows in rows_per_day.items() if rows)})
        if recovered:
            self._context.log.warning(
                f"{len(recovered)} micro-batches committed by runs that never reported them (a "
                f"failed or killed ingest): their days {recovered_days} are recomputed too")
        newest = max([*batches, *recovered], key=lambda b: b.started_at, default=None)
        reported_through = newest.started_at if newest else self.through or FIRST_DAY
        self.through, self.reported_at = reported_through, time.monotonic()
        self.reports += 1
        self.micro_batches += len(batches)
        self.records += consumed
        self.changed_days.update(changed)
        return {
            "records_consumed": consumed,
            "rows_landed": sum(rows_per_day.values()),
            "dead_letters": sum(reasons.values()),
            "duplicates_removed": sum(b.duplicates_removed for b in batches),
            "dead_letters_per_reason": dg.MetadataValue.json(reasons),
            "rows_per_event_date": dg.MetadataValue.json(rows_per_day),
            # Read by the partition sensor: exactly these daily partitions get recomputed.
            "changed_partitions": dg.MetadataValue.json(changed),
            "recovered_batches": len(recovered),
            "recovered_partitions": dg.MetadataValue.json(recovered_days),
            # Where the next report starts looking for batches, in this run or the next.
            "reported_through": reported_through,
            "start_offsets": dg.MetadataValue.json(batches[0].start_offsets if batches else {}),
            "end_offsets": dg.MetadataValue.json(batches[-1].end_offsets if batches else {}),
            "micro_batches": len(batches),
            "events_per_s": round(consumed / seconds) if seconds else 0,
            "landing_path": dg.MetadataValue.path(self._landing),
            **({"dagster/column_schema": table_schema(columns)} if (columns := self._schema()) else {}),
        }, newest

    def _schema(self) -> dict[str, str] | None:
        # The ingest writes one fixed schema, so a run reads it once, not in every report: a
        # report's Spark work runs beside the next micro-batch on the same cores.
        if self._columns is None:
            self._columns = table_columns(self._session, self._landing)
        return self._columns


def _stream(context: dg.AssetExecutionContext, ingest: IngestJob, config: IngestRunConfig,
            report: LandingReport, refresh: LiveRefresh) -> None:
    """Keep the query running and refresh the live documents after each micro-batch that brought
    records: no run start, no query start and no Spark session per cycle. Each refresh is recorded
    as a `live_indices` materialization, whose cursor the next refresh (in this run or another)
    starts from; `live_indices` itself then catches up the batch that landed last. What the lake
    gained is reported every `report_seconds` on the way."""
    context.log.info(f"streaming for up to {config.stream_seconds} s, a micro-batch every "
                     f"{config.trigger_seconds:g} s, until {config.idle_seconds} s without a record; "
                     f"reporting the lake's changes every {config.report_seconds} s")

    outage = ElasticsearchOutage()

    def after_batches(progress: list) -> None:
        before = refresh.cursor
        try:
            metadata = refresh()
        except (TransportError, ApiError) as exc:
            outage.note(context, exc)  # raises once the outage outlasts its allowance
            return
        outage.over()
        records = sum(p.numInputRows for p in progress)
        context.log.info(f"micro-batch {', '.join(str(p.batchId) for p in progress)}: "
                         f"{records:,} records; live refresh: {metadata.get('new_rows', 0):,} new "
                         f"rows on open days")
        if refresh.cursor != before:
            context.log_event(dg.AssetMaterialization(LIVE_INDICES, metadata=metadata))
        # After the refresh: its latency is the live path's, the report's only the closed days'.
        if report.due(config.report_seconds):
            report.during_run()

    ingest.stream(config.stream_seconds, config.idle_seconds, after_batches)


class ElasticsearchOutage:
    """Elasticsearch down (a node restarting) only delays the live refresh: the refresh's cursor
    stays where it was, so the next one takes the skipped rows too. An outage longer than
    `allowance_s` fails the run, which alerts; the sensor's retry resumes."""

    def __init__(self, allowance_s: float = 300):
        self.allowance_s = allowance_s
        self.since: float | None = None

    def note(self, context: dg.AssetExecutionContext, error: Exception) -> None:
        if isinstance(error, ApiError) and error.status_code < 500:
            raise error  # a refusal (a bad mapping, say), not an outage
        now = time.monotonic()
        self.since = self.since or now
        if now - self.since > self.allowance_s:
            raise error
        context.log.warning(f"live refresh delayed: Elasticsearch did not answer "
                            f"({type(error).__name__}: {str(error)[:200]}) for "
                            f"{now - self.since:.0f} s; the next micro-batch's refresh takes "
                            f"these rows too")

    def over(self) -> None:
        self.since = None


@contextmanager
def _explained_lake_errors(root: str) -> Iterator[None]:
    """A full lake fails the run with what to do about it, not only Spark's stack trace."""
    try:
        yield
    except Exception as exc:
        if "No space left on device" not in str(exc):
            raise
        raise dg.Failure(
            description=f"the lake at {root} is full (No space left on device). Free space or grow "
                        "the volume, then run the ingest again: nothing of the failed micro-batch "
                        "was published, and the next run resumes from the checkpoint, landing "
                        "every event exactly once.", allow_retries=False) from exc


def _refuse_beside_another_ingest(context: dg.AssetExecutionContext) -> None:
    """Fail before touching the lake if an older run that ingests is still in progress; of two
    that start together, the older proceeds."""
    own = context.run
    others = [record for record in context.instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]), limit=50)
              if record.dagster_run.run_id != own.run_id
              and (record.dagster_run.job_name == INGEST_JOB
                   or clickstream_landing.key in (record.dagster_run.asset_selection or ()))]
    mine = context.instance.get_run_record_by_id(own.run_id)
    older = [r for r in others if (r.start_time or 0, r.dagster_run.run_id)
             < ((mine.start_time if mine else None) or float("inf"), own.run_id)]
    if older:
        run = older[0].dagster_run
        raise dg.Failure(
            description=f"run {run.run_id} is already ingesting from {run.job_name}; two ingests "
                        "must never share the checkpoint, so this run stops before touching the "
                        "lake. The Kafka sensor launches the next ingest once that run ends.",
            allow_retries=False)


def _reported_through(context: dg.AssetExecutionContext) -> str | None:
    """The start time of the newest micro-batch an earlier materialization reported; None before
    the first materialization. One from before this field existed counts from now on."""
    event = context.instance.get_latest_materialization_event(clickstream_landing.key)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    if "reported_through" not in metadata:
        return datetime.now(UTC).isoformat(timespec="milliseconds")
    return metadata["reported_through"].value

