"""Keeps the services `stack up` started running: one whose process dies is started again, with
backoff, and every restart is logged and counted for `stack status`.

The supervisor is a process of its own, started by `stack up` beside the services and stopped
first by `stack down`. It watches only what this state folder started (its pid files), so a
service someone else runs, or one `stack down` stopped, is left alone.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from config.settings import Settings

from .errors import StackError
from .process import ServiceProcess, read_pid_file, start_lock, start_process
from .services import Service, local_services

NAME = "supervisor"
POLL_S = 2.0
# Waits before the 1st, 2nd, ... start of a service that keeps dying; the last one repeats.
BACKOFF_S = (1, 5, 15, 30, 60, 120)
# A service that stayed up this long starts again from the first wait when it next dies.
STABLE_S = 600


@dataclass
class _Watch:
    """What the supervisor knows of one service between two looks."""

    service: Service
    failures: int = 0  # starts in a row that did not keep the service up for STABLE_S
    next_start: float = 0.0  # monotonic time before which no start is tried
    up_since: float | None = None


def restarts_file(state_dir: Path) -> Path:
    return state_dir / "run" / "restarts.json"


def read_restarts(state_dir: Path) -> dict[str, dict]:
    """Per service: `count` of restarts since `stack up`, and the `last` one's time and cause."""
    try:
        return json.loads(restarts_file(state_dir).read_text())
    except (OSError, ValueError):
        return {}


def _settings_file(state_dir: Path) -> Path:
    return state_dir / "run" / "supervisor.settings"


def ensure_running(settings: Settings) -> ServiceProcess | None:
    """Start the supervisor for `settings` unless it runs; None when there is nothing to watch."""
    if not any(read_pid_file(settings.state_dir, s.name) for s in local_services(settings)):
        return None
    running = read_pid_file(settings.state_dir, NAME)
    if running is not None and running.is_alive():
        return running
    # The settings travel in a file only this user reads: they may hold credentials.
    path = _settings_file(settings.state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(pickle.dumps(settings))
    # Restarts are counted from this supervisor's start: counts left by one that ended without
    # `stack down` (a reboot, a killed session) are not this stack's.
    restarts_file(settings.state_dir).unlink(missing_ok=True)
    return start_process(NAME, [sys.executable, "-m", "stack.supervisor", str(settings.state_dir)],
                         state_dir=settings.state_dir, log=settings.state_dir / "logs" / "supervisor.log",
                         marker=f"stack.supervisor {settings.state_dir}")


class Supervisor:
    def __init__(self, settings: Settings, services: list[Service] | None = None):
        self.settings = settings
        self.watches = [_Watch(service) for service in services or local_services(settings)]

    def look(self) -> None:
        """One look at every watched service: note the live ones, start a dead one when due."""
        now = time.monotonic()
        for watch in self.watches:
            process = read_pid_file(self.settings.state_dir, watch.service.name)
            if process is None:  # never started here, or stopped by `stack down`
                watch.up_since = None
                continue
            if process.is_alive():
                watch.up_since = watch.up_since or now
                if now - watch.up_since >= STABLE_S:
                    watch.failures = 0
                continue
            if now >= watch.next_start:
                with start_lock(self.settings.state_dir, watch.service.name):
                    # `stack up` may have started it meanwhile.
                    again = read_pid_file(self.settings.state_dir, watch.service.name)
                    if again is not None and again.pid == process.pid:
                        self._restart(watch, process)

    def _restart(self, watch: _Watch, dead: ServiceProcess) -> None:
        service = watch.service
        lived = time.time() - dead.started_at
        cause = f"pid {dead.pid} gone after {lived:.0f} s (log: {dead.log})"
        _log(f"{service.title} died: {cause}; starting it again (attempt {watch.failures + 1})")
        # The wait before the next start, whether this one fails or the service dies again soon.
        wait = BACKOFF_S[min(watch.failures, len(BACKOFF_S) - 1)]
        watch.failures += 1
        started = time.monotonic()
        try:
            service.start()
        except (StackError, OSError) as exc:
            watch.next_start = time.monotonic() + wait
            _log(f"{service.title} did not start: {exc}\n  next attempt in {wait} s")
            return
        watch.up_since = time.monotonic()
        watch.next_start = watch.up_since + wait
        _log(f"{service.title} healthy again after {time.monotonic() - started:.1f} s")
        self._count(service.name, cause)

    def _count(self, name: str, cause: str) -> None:
        restarts = read_restarts(self.settings.state_dir)
        entry = restarts.setdefault(name, {"count": 0})
        entry["count"] += 1
        entry["last"] = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "cause": cause}
        path = restarts_file(self.settings.state_dir)
        path.with_suffix(".tmp").write_text(json.dumps(restarts, indent=2))
        path.with_suffix(".tmp").replace(path)


def _log(message: str) -> None:
    print(f"{datetime.now(UTC).isoformat(timespec='seconds')} {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """`python -m stack.supervisor STATE_DIR`, as `stack up` starts it."""
    state_dir = Path((argv or sys.argv[1:])[0])
    settings = pickle.loads(_settings_file(state_dir).read_bytes())
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    supervisor = Supervisor(settings)
    names = ", ".join(w.service.title for w in supervisor.watches)
    _log(f"supervising {names} of {state_dir} (pid {os.getpid()}), a look every {POLL_S:g} s")
    while not stopping:
        if read_pid_file(state_dir, NAME) is None:  # `stack down` of an older version, say
            break
        try:
            supervisor.look()
        except Exception as exc:  # the supervisor must outlive whatever one look runs into
            _log(f"a look failed ({exc!r}); looking again in {POLL_S:g} s")
        time.sleep(POLL_S)
    _log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
