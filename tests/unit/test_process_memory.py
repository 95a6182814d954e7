"""The stack's memory meter counts what processes really hold, not a fork's shared pages twice."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from stack.process import tree_rss_bytes


def test_a_fork_that_has_not_exec_d_is_not_counted_twice():
    ballast = bytearray(200 * 1024 * 1024)  # resident, so a double count shows
    for page in range(0, len(ballast), 4096):
        ballast[page] = 1
    alone = tree_rss_bytes(os.getpid())
    child = os.fork()
    if child == 0:  # the child shares every page and just waits
        time.sleep(5)
        os._exit(0)
    try:
        time.sleep(0.5)
        with_fork = tree_rss_bytes(os.getpid())
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    assert with_fork < alone * 1.2, (alone, with_fork)
    # A child that runs a program of its own is counted.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(300 << 20); "
                                "x[::4096] = b'1' * len(x[::4096]); time.sleep(5)"])
    try:
        time.sleep(1.5)
        assert tree_rss_bytes(os.getpid()) > alone + 250 * 1024 * 1024
    finally:
        sleeper.kill()
        sleeper.wait()
