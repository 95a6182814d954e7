import dagster as dg
from pydantic import PrivateAttr
from pyspark.sql import SparkSession

from spark.session import build_session

from ..settings import Settings
from ..stack.spark_jars import spark_kafka_jars


class SparkResource(dg.ConfigurableResource):
    """A SparkSession with Kafka's connector on the classpath; local by default, any master works."""

    master: str = "local[*]"
    driver_memory: str = "4g"
    conf: dict[str, str] = {}
    _session: SparkSession | None = PrivateAttr(default=None)

    def get_session(self) -> SparkSession:
        # Built on first use inside a run, never at import time.
        if self._session is None:
            self._session = build_session(
                "clickstream-dagster",
                master=self.master,
                driver_memory=self.driver_memory,
                jars=spark_kafka_jars(Settings.from_env()),
                conf=self.conf,
            )
        return self._session
