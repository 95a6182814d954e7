"""Services the stack starts stop on SIGTERM, whatever the starting process ignores."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from stack.process import start_process


def test_a_service_started_where_sigterm_is_ignored_still_stops_on_it(tmp_path):
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as in a background job under Dagster
    try:
        service = start_process("sleeper", [sys.executable, "-c", "import time; time.sleep(60)",
                                            "sleeper-marker"],
                                state_dir=tmp_path, log=tmp_path / "sleeper.log",
                                marker="sleeper-marker")
    finally:
        signal.signal(signal.SIGTERM, previous)
    status = Path(f"/proc/{service.pid}/status").read_text()
    ignored = int(status.split("SigIgn:")[1].split()[0], 16)
    assert not ignored & (1 << (signal.SIGTERM - 1))
    os.killpg(service.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while service.is_alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not service.is_alive()
