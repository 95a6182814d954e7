"""Alerts leave the pipeline one way: logged, and POSTed as JSON to CLICKSTREAM_ALERT_WEBHOOK_URL
when it is set (a chat hook, an incident tool). Failed runs and traffic anomalies both use it."""

import json
import logging
import urllib.request

from config.settings import Settings

WEBHOOK_TIMEOUT_S = 10
log = logging.getLogger(__name__)


def post_alert(alert: dict) -> bool:
    """POST `alert` to the configured webhook; True once it answered with success. False when
    none is configured, or when it cannot be reached or refuses: the alert is still in the run's
    log, and a broken hook must not fail the run or check that raised it. The setting is read per
    alert, so a changed environment needs no restart of the code server."""
    url = Settings.from_env().alert_webhook_url
    if not url:
        return False
    request = urllib.request.Request(url, data=json.dumps(alert, default=str).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S):
            return True
    except OSError as exc:  # unreachable, timed out, or an HTTP error status
        log.error(f"alert webhook {url} failed ({exc}); the alert was: {alert}")
        return False
