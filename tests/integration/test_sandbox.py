"""A sandbox run that fails says why in its error: `make demo`, `make bench` and the tests that
build on sandboxes report only that error, so it names the failed step and its cause."""

from __future__ import annotations

import dataclasses
import uuid

import dagster as dg
import pytest

from sandbox.pipeline import Sandbox, SandboxRunFailed


def test_a_failed_run_names_its_step_and_the_cause(stack, tmp_path):
    # A daily run with no landing to compact from.
    sandbox = Sandbox(f"test-sandbox-{uuid.uuid4().hex[:8]}",
                      dataclasses.replace(stack, lake_dir=str(tmp_path / "lake")))
    with pytest.raises(SandboxRunFailed) as failure:
        sandbox.daily(dg.DagsterInstance.ephemeral(), "2026-01-01", "2026-01-01")
    (message, *more) = str(failure.value).splitlines()
    assert not more, "the summary line of a failed test shows only the first line"
    assert "step raw_clickstream failed" in message and "PATH_NOT_FOUND" in message
    assert f"{sandbox.name}-lake/landing/clickstream" in message
