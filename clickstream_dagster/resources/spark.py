import dataclasses

import dagster as dg
from pydantic import PrivateAttr
from pyspark.sql import SparkSession

from ..settings import Settings
from ..spark_session import local_spark


class SparkResource(dg.ConfigurableResource):
    """A SparkSession with Kafka's connector on the classpath; local by default, any master works."""

    master: str = "local[*]"
    driver_memory: str = "3g"
    conf: dict[str, str] = {}
    _session: SparkSession | None = PrivateAttr(default=None)

    def get_session(self) -> SparkSession:
        # Built on first use inside a run, never at import time.
        if self._session is None:
            settings = dataclasses.replace(Settings.from_env(), spark_master=self.master,
                                           spark_driver_memory=self.driver_memory)
            self._session = local_spark(settings, "clickstream-dagster", conf=self.conf)
        return self._session
