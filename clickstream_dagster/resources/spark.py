from typing import Any

import dagster as dg
from dagster_pyspark import LazyPySparkResource
from pyspark.sql import SparkSession

from config.settings import Settings
from spark.jars import installed_jars
from spark.session import build_session, connect, settings_conf, stop_session, within

SESSION_STOP_S = 10  # a run's session release, at most; the server closes an idle one anyway


class SparkResource(LazyPySparkResource):
    """Spark for the runs, built by dagster-pyspark on first use inside a run, never at import.

    By default `spark_config` only names the long-lived Spark Connect server ("spark.remote"), so a
    run starts no JVM; without a server it holds an in-process Spark's whole configuration."""

    spark_config: dict[str, Any]
    connect_retry_s: float = 30.0  # CLICKSTREAM_SPARK_RETRY_S


    def get_session(self) -> SparkSession:
        return self.spark_session

    def _init_session(self) -> None:
        remote = self.spark_config.get("spark.remote")
        if self._spark_session is None and remote:
            # A session of the run's own, not the process's default one that getOrCreate would hand
            # out and share: closing it at the end of the run closes nobody else's.
            session = connect(remote, self.connect_retry_s)
            for key, value in self.spark_config.items():
                if key != "spark.remote":
                    session.conf.set(key, value)
            self._spark_session = session
        super()._init_session()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # A run's Connect session would otherwise idle on the server until its timeout, holding its
        # finished queries' plans: after a few hundred runs the server spent its time in GC.
        # Bounded: the run must end even when its server hangs.
        if self._spark_session is not None and "spark.remote" in self.spark_config:
            within(SESSION_STOP_S, lambda: stop_session(self._spark_session))


def spark_config(settings: Settings, conf: dict[str, str] | None = None) -> dict[str, str]:
    """The dagster-pyspark configuration for the documented settings."""
    if settings.spark_remote:
        return {"spark.remote": settings.spark_remote, **(conf or {})}
    return {"spark.app.name": "clickstream-dagster", "spark.master": settings.spark_master,
            "spark.driver.memory": settings.spark_driver_memory,
            "spark.jars": ",".join(installed_jars(settings.cache_dir)), **settings_conf(settings),
            **(conf or {})}


def pipeline_spark(settings: Settings, app_name: str, conf: dict[str, str] | None = None
                   ) -> SparkSession:
    """Spark outside a Dagster run (CLI, benchmarks): a client of the Connect server
    (CLICKSTREAM_SPARK_REMOTE), or else an in-process Spark with the runs' settings; `conf` holds
    session settings on top (both kinds take them)."""
    if settings.spark_remote:
        return build_session(app_name, remote=settings.spark_remote, retry_s=settings.spark_retry_s,
                             conf=conf)
    return build_session(
        app_name, master=settings.spark_master, driver_memory=settings.spark_driver_memory,
        jars=installed_jars(settings.cache_dir), conf={**settings_conf(settings), **(conf or {})})

