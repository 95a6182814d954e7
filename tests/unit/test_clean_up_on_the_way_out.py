"""A clean-up on the way out of an interrupted run waits a bounded time, whatever it calls."""

import threading

from spark.session import within


def test_a_clean_up_that_hangs_is_left_behind_after_its_time():
    hung = threading.Event()  # never set: without the bound, the test would wait forever
    assert within(0.5, hung.wait) is False


def test_a_clean_up_that_fails_or_finishes_says_so():
    def fails():
        raise RuntimeError("the server is gone")

    assert within(5, fails) is False
    done = []
    assert within(5, lambda: done.append(1)) is True and done == [1]
