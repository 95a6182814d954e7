"""The alert webhook: a JSON POST when configured, and a broken hook never raises."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from clickstream_dagster.alerts import post_alert
from tests.helpers import free_port


def test_an_alert_is_posted_as_json_to_the_configured_webhook(monkeypatch):
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the handler's required name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.handle_request, daemon=True).start()
    monkeypatch.setenv("CLICKSTREAM_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/")
    assert post_alert({"kind": "traffic_anomaly", "anomalies": 3}) is True
    server.server_close()
    assert received == [{"kind": "traffic_anomaly", "anomalies": 3}]


def test_no_webhook_or_a_broken_one_sends_nothing_and_raises_nothing(monkeypatch, caplog):
    monkeypatch.delenv("CLICKSTREAM_ALERT_WEBHOOK_URL", raising=False)
    assert post_alert({"kind": "run_failure"}) is False
    monkeypatch.setenv("CLICKSTREAM_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{free_port()}/")
    assert post_alert({"kind": "run_failure"}) is False
    assert "alert webhook" in caplog.text and "run_failure" in caplog.text
