"""Starting the ingest's query again when the server's foreachBatch worker connected back late."""

import pytest
from pyspark.errors.exceptions.connect import SparkException

from spark.ingest.stream import start_past_a_late_worker

LATE = SparkException("Python worker failed to connect back.")


class Writer:
    """A stream writer whose first starts fail with the given errors."""

    def __init__(self, *errors: Exception):
        self.errors = list(errors)
        self.starts = 0

    def start(self):
        self.starts += 1
        if self.errors:
            raise self.errors.pop(0)
        return f"query {self.starts}"


def test_a_late_worker_is_started_again_until_the_query_runs():
    writer = Writer(LATE, LATE)
    assert start_past_a_late_worker(writer, attempts=3, wait_s=0) == "query 3"


def test_a_worker_late_on_every_attempt_fails_with_the_servers_error():
    writer = Writer(LATE, LATE, LATE)
    with pytest.raises(SparkException, match="failed to connect back"):
        start_past_a_late_worker(writer, attempts=3, wait_s=0)
    assert writer.starts == 3


def test_any_other_error_is_raised_at_once():
    writer = Writer(SparkException("[DELTA_MISSING_TRANSACTION_LOG] ..."))
    with pytest.raises(SparkException, match="DELTA_MISSING_TRANSACTION_LOG"):
        start_past_a_late_worker(writer, attempts=3, wait_s=0)
    assert writer.starts == 1


def test_the_pauses_between_starts_double(monkeypatch):
    pauses = []
    monkeypatch.setattr("spark.ingest.stream.time.sleep", pauses.append)
    writer = Writer(LATE, LATE, LATE)
    assert start_past_a_late_worker(writer, attempts=5, wait_s=2.0) == "query 4"
    assert pauses == [2.0, 4.0, 8.0]
