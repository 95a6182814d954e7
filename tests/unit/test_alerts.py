"""The alert webhook: a JSON POST when configured, and a broken hook never raises."""

from clickstream_dagster.alerts import post_alert
from tests.helpers import free_port, webhook_server


def test_an_alert_is_posted_as_json_to_the_configured_webhook(monkeypatch):
    with webhook_server() as (url, received):
        monkeypatch.setenv("CLICKSTREAM_ALERT_WEBHOOK_URL", url)
        assert post_alert({"kind": "traffic_anomaly", "anomalies": 3}) is True
    assert received == [{"kind": "traffic_anomaly", "anomalies": 3}]


def test_no_webhook_or_a_broken_one_sends_nothing_and_raises_nothing(monkeypatch, caplog):
    monkeypatch.delenv("CLICKSTREAM_ALERT_WEBHOOK_URL", raising=False)
    assert post_alert({"kind": "run_failure"}) is False
    monkeypatch.setenv("CLICKSTREAM_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/")
    assert post_alert({"kind": "run_failure"}) is False
    assert "alert webhook" in caplog.text and "run_failure" in caplog.text


def test_a_run_failure_alert_names_what_the_step_raised():
    import dagster as dg

    from clickstream_dagster.sensors import step_errors
    from spark.session import SparkServerUnavailable

    @dg.asset
    def needs_spark() -> None:
        raise SparkServerUnavailable("the Spark Connect server at sc://127.0.0.1:1 did not answer")

    result = dg.materialize([needs_spark], raise_on_error=False)
    assert step_errors(result.get_step_failure_events()) == {
        "needs_spark": "spark.session.SparkServerUnavailable: the Spark Connect server at "
                       "sc://127.0.0.1:1 did not answer"}


def test_a_failure_alert_blames_the_service_its_error_points_at():
    from clickstream_dagster.sensors import blamed_service

    assert blamed_service("pyspark.errors.exceptions.connect.SparkConnectException: "
                          "[NO_ACTIVE_SESSION] No active Spark session found.") == "spark-connect"
    assert blamed_service("StreamingQueryException: ... cimpl.KafkaException: KafkaError{code="
                          "COORDINATOR_LOAD_IN_PROGRESS}") == "kafka"
    assert blamed_service("elastic_transport.ConnectionError: Connection error caused by: "
                          "ConnectionResetError(104)") == "elasticsearch"
    assert blamed_service("ValueError: no rows for 2026-12-01") is None
