"""The alert webhook: a JSON POST when configured, and a broken hook never raises."""

import uuid

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


def _failed_run(instance, error: Exception):
    """A real run on `instance` whose one step raises `error`; returns (run, its failure event)."""
    import dagster as dg

    @dg.asset(name=f"fails_{uuid.uuid4().hex[:6]}")
    def fails() -> None:
        raise error

    result = dg.materialize([fails], instance=instance, raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    (failure,) = [entry.dagster_event for entry in
                  instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
    return run, failure


def test_runs_failing_in_one_outage_raise_one_alert_and_each_is_logged(monkeypatch):
    import dagster as dg

    from clickstream_dagster.sensors import run_failure_alert_sensor
    from spark.session import SparkServerUnavailable

    server_gone = SparkServerUnavailable("the Spark Connect server at sc://127.0.0.1:1 restarted")
    with dg.DagsterInstance.ephemeral() as instance, webhook_server() as (url, received):
        monkeypatch.setenv("CLICKSTREAM_ALERT_WEBHOOK_URL", url)
        runs = [_failed_run(instance, server_gone), _failed_run(instance, server_gone),
                _failed_run(instance, ValueError("a bug of our own")),
                _failed_run(instance, RuntimeError("cimpl.KafkaException: broker gone"))]
        for run, failure in runs:
            context = dg.build_run_status_sensor_context(
                sensor_name=run_failure_alert_sensor.name, dagster_instance=instance,
                dagster_run=run, dagster_event=failure).for_run_failure()
            run_failure_alert_sensor(context)
    # The second Spark failure is the first one's outage; a failure that blames no service, and
    # one that blames another service, are alerts of their own.
    assert [(alert["run_id"], alert["services"]) for alert in received] == [
        (runs[0][0].run_id, ["spark-connect"]), (runs[2][0].run_id, []),
        (runs[3][0].run_id, ["kafka"])]
