"""Start-up waits tell a service that died from one that is passing through an exec."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from stack.process import StackError, start_process, wait_for

MARKER = "starter-marker"
# The shell's own command line spells the marker only as "${M}-marker", so for 0.7 s the process
# is alive without it, as a launcher script can be between two execs.
EXEC_CHAIN = (f"import os; os.execvp('sh', ['sh', '-c', 'sleep 0.7; M=starter; "
              f"exec {sys.executable} -c \"import time; time.sleep(60)\" ${{M}}-marker'])")


def _start(tmp_path, code: str):
    return start_process("starter", [sys.executable, "-c", code, MARKER], state_dir=tmp_path,
                         log=tmp_path / "starter.log", marker=MARKER)


def _ready_after(seconds: float):
    ready_at = time.monotonic() + seconds
    return lambda: time.monotonic() >= ready_at


def test_a_service_passing_through_an_exec_is_not_reported_dead(tmp_path):
    service = _start(tmp_path, EXEC_CHAIN)
    try:
        assert wait_for("starter", _ready_after(2), service=service, timeout_s=10)
        assert service.is_alive()
    finally:
        os.killpg(service.pid, signal.SIGKILL)


def test_a_service_that_dies_during_start_up_fails_fast_with_its_log(tmp_path):
    service = _start(tmp_path, "import sys, time; time.sleep(0.3); print('bad config'); sys.exit(3)")
    started = time.monotonic()
    with pytest.raises(StackError, match="exited during start-up(.|\n)*bad config"):
        wait_for("starter", _ready_after(60), service=service, timeout_s=60)
    assert time.monotonic() - started < 10


def test_a_jvm_that_dies_is_reported_by_its_first_exception_not_its_stack_trace_alone(tmp_path):
    trace = "".join(f"\\tat frame{i}\\n" for i in range(40))
    service = _start(tmp_path, "import sys; print('starting'); print('java.net.BindException: "
                               f"Address already in use: port 7179'); print('{trace}'); sys.exit(1)")
    with pytest.raises(StackError, match="exited during start-up: java.net.BindException: Address "
                                         "already in use: port 7179. Last lines"):
        wait_for("starter", _ready_after(60), service=service, timeout_s=60)
