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
