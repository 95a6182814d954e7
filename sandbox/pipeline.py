"""A whole pipeline with topics, a lake and indices of its own, run through the same assets, checks
and resources as the Dagster deployment. `make demo` and `make bench` use one each, so neither
ever mixes with `make run`'s live data, and each run starts from scratch."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import dagster as dg

from clickstream_dagster.assets.analytics import ANALYTICS_ASSETS
from clickstream_dagster.assets.ingest import clickstream_landing
from clickstream_dagster.assets.lake import raw_clickstream
from clickstream_dagster.assets.serving import SERVING_ASSETS
from clickstream_dagster.checks.anomalies import ANOMALY_CHECKS
from clickstream_dagster.checks.quality import QUALITY_CHECKS
from clickstream_dagster.checks.serving import SERVING_CHECKS
from clickstream_dagster.definitions import build_resources
from clickstream_dagster.serving.indices import SERVED, delete_indices
from config.clients import elasticsearch_client, kafka_admin
from config.settings import Settings
from stack import kafka

# Everything the daily job materializes after ingest, blocking checks included.
DAILY_SELECTION = [raw_clickstream, *ANALYTICS_ASSETS, *SERVING_ASSETS, *QUALITY_CHECKS,
                   *ANOMALY_CHECKS, *SERVING_CHECKS]


def reset_data(settings: Settings) -> list[str]:
    """Empty topics (deleted and created again), no lake and no served indices for `settings`;
    returns what went. Only the index families of its prefix: `clickstream-url-country-*` is not
    `clickstream-demo-url-country-*`."""
    gone = []
    existing = kafka_admin(settings).list_topics(timeout=10).topics
    stale = [t for t in (settings.topic, settings.dlq_topic) if t in existing]
    if stale:
        kafka.delete_topics(settings, stale)
        gone += [f"topic {t}" for t in stale]
        time.sleep(2)  # deletion completes asynchronously on the broker
    kafka.create_topics(settings, {settings.topic: settings.topic_partitions, settings.dlq_topic: 1})
    if Path(settings.lake_dir).exists():
        shutil.rmtree(settings.lake_dir)
        gone.append(f"lake {settings.lake_dir}")
    client = elasticsearch_client(settings)
    indices = [index for spec in SERVED for index in client.indices.get(
        index=f"{spec.with_prefix(settings.elasticsearch_index_prefix).name}-*",
        allow_no_indices=True)]
    delete_indices(client, indices)
    return gone + [f"index {index}" for index in indices]


class SandboxRunFailed(RuntimeError):
    pass


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """`name` prefixes the topics, the lake folder and the index families."""

    name: str
    base: Settings

    @property
    def settings(self) -> Settings:
        return dataclasses.replace(
            self.base, topic=self.name, dlq_topic=f"{self.name}.dlq",
            lake_dir=str(Path(self.base.lake_dir).with_name(f"{self.name}-lake")),
            elasticsearch_index_prefix=self.name)

    def resources(self) -> dict[str, dg.ConfigurableResource]:
        return build_resources(self.settings)

    def reset(self) -> None:
        """New topics, an empty lake and no indices of this sandbox."""
        reset_data(self.settings)

    def ingest(self, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
        """Everything on the sandbox topic into its landing lake, as the ingest job does."""
        return self._materialize([clickstream_landing], instance, {})

    def daily(self, instance: dg.DagsterInstance, first: str, last: str) -> dg.ExecuteInProcessResult:
        """Compaction, analytics, quality gates and indices for the days first..last, in one run."""
        return self._materialize(DAILY_SELECTION, instance,
                                 {"dagster/asset_partition_range_start": first,
                                  "dagster/asset_partition_range_end": last})

    def _materialize(self, assets, instance, tags) -> dg.ExecuteInProcessResult:
        result = dg.materialize(assets, resources=self.resources(), instance=instance, tags=tags,
                                raise_on_error=False)
        if not result.success:
            # Each failed check with what it observed, so the cause is in the error itself.
            failed = {e.check_name: {key: value.value for key, value in e.metadata.items()}
                      for e in result.get_asset_check_evaluations() if not e.passed}
            raise SandboxRunFailed(f"{self.name} run {result.run_id} failed" +
                                   (f"; failed checks: {failed}" if failed else "") +
                                   "".join(f"; {cause}" for cause in _step_failures(result)))
        return result


def _step_failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """Each failed step with the first line of its innermost error, which names the cause (a
    Spark exception's class and message, say) where Dagster's own wrapper does not."""
    causes = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None and error.cause is not None:
            error = error.cause
        lines = error.message.strip().splitlines() if error else []
        first = lines[0][:500] if lines else "no error recorded"  # "Class: message"
        causes.append(f"step {event.step_key} failed: {first}")
    return causes
