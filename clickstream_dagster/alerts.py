"""Alerts leave the pipeline one way: logged, and POSTed as JSON to CLICKSTREAM_ALERT_WEBHOOK_URL
when it is set (a chat hook, an incident tool). Failed runs and traffic anomalies both use it."""

import json
import urllib.request

from .settings import Settings

WEBHOOK_TIMEOUT_S = 10


def post_alert(alert: dict) -> bool:
    """POST `alert` to the configured webhook; False when none is configured. The setting is read
    per alert, so a changed environment needs no restart of the code server."""
    url = Settings.from_env().alert_webhook_url
    if not url:
        return False
    request = urllib.request.Request(url, data=json.dumps(alert, default=str).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S):
        pass
    return True
