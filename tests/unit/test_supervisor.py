"""The supervisor's rhythm: a dead service is started again at once, then with growing waits while
it keeps failing; what `stack down` stopped is left alone."""

import dataclasses
import sys
import time

from config.settings import Settings
from stack import supervisor
from stack.errors import StackError
from stack.process import pid_file, start_process, stop_process
from stack.services import kafka_service


def _dead_service(state_dir, name: str) -> None:
    """A pid file of `name` whose process has exited."""
    process = start_process(name, [sys.executable, "-c", "pass"], state_dir=state_dir,
                            log=state_dir / "logs" / f"{name}.log", marker="-c pass")
    deadline = time.monotonic() + 10
    while process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process.is_alive()


def test_a_service_that_will_not_start_is_tried_again_with_growing_waits(tmp_path, monkeypatch):
    settings = Settings(state_dir=tmp_path)
    attempts = []

    def refuse():
        attempts.append(clock[0])
        raise StackError("port 9092 taken")

    service = dataclasses.replace(kafka_service(settings), start=refuse)
    _dead_service(tmp_path, service.name)
    clock = [1000.0]
    monkeypatch.setattr(supervisor.time, "monotonic", lambda: clock[0])
    watcher = supervisor.Supervisor(settings, [service])
    for _ in range(400):  # 800 s of looks, 2 s apart
        watcher.look()
        clock[0] += supervisor.POLL_S
    waits = [round(b - a) for a, b in zip(attempts, attempts[1:], strict=False)]
    assert attempts[0] == 1000.0  # the first attempt is at once
    assert waits[:6] == [2, 6, 16, 30, 60, 120]  # each wait rounded up to the next look
    assert set(waits[6:]) == {120}
    assert supervisor.read_restarts(tmp_path) == {}  # a failed start is not a restart


def test_what_stack_down_stopped_is_left_alone(tmp_path):
    settings = Settings(state_dir=tmp_path)
    started = []
    service = dataclasses.replace(kafka_service(settings), start=lambda: started.append(1))
    _dead_service(tmp_path, service.name)
    pid_file(tmp_path, service.name).unlink()  # what `stack down` does after stopping it
    supervisor.Supervisor(settings, [service]).look()
    assert started == []


def test_a_new_supervisor_counts_restarts_from_its_own_start(tmp_path):
    settings = Settings(state_dir=tmp_path)
    start_process("kafka", [sys.executable, "-c", "import time; time.sleep(60)"], state_dir=tmp_path,
                  log=tmp_path / "logs" / "kafka.log", marker="time.sleep(60)")
    # What a supervisor that ended without `stack down` left behind.
    supervisor.restarts_file(tmp_path).parent.mkdir(parents=True, exist_ok=True)
    supervisor.restarts_file(tmp_path).write_text('{"kafka": {"count": 3}}')
    try:
        assert supervisor.ensure_running(settings) is not None
        assert supervisor.read_restarts(tmp_path) == {}
    finally:
        stop_process(tmp_path, supervisor.NAME)
        stop_process(tmp_path, "kafka")
