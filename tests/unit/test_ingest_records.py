"""What the ingest keeps beside the lake: batch-log records written by older versions still load,
and only a checkpoint on local disk trades Spark's checkpoint file manager for the one that renames
without forking, and is read without a Spark job."""

from __future__ import annotations

import json

import pytest

from spark.ingest.batch_log import BatchStats
from spark.ingest.checkpoint import file_manager_conf, logged_offsets, query_id

RECORD = {
    "batch_id": 7, "started_at": "2026-11-30T10:00:00.000+00:00",
    "landed_at": "2026-11-30T10:00:03.100+00:00", "seconds": 3.4,
    "start_offsets": {"0": 10}, "end_offsets": {"0": 25}, "input_rows": 15, "landing_rows": 12,
    "dead_letters": 2, "duplicates_removed": 1, "rows_per_event_date": {"2026-11-30": 12},
    "dead_letters_per_reason": {"bad_json": 2}, "phase_seconds": {"landing": 1.2},
}


def test_a_record_round_trips():
    stats = BatchStats(**RECORD)
    assert BatchStats.from_json(stats.to_json()) == stats


def test_a_record_from_before_the_landing_figures_were_dropped_still_loads():
    old = {**RECORD, "landing_files": 3, "landing_bytes": 40_960}
    assert BatchStats.from_json(json.dumps(old)) == BatchStats(**RECORD)


def test_a_record_missing_a_field_is_an_error_not_a_default():
    incomplete = {k: v for k, v in RECORD.items() if k != "end_offsets"}
    with pytest.raises(KeyError, match="end_offsets"):
        BatchStats.from_json(json.dumps(incomplete))


@pytest.mark.parametrize("checkpoint", ["/var/lake/_checkpoints/ingest",
                                        "file:///var/lake/_checkpoints/ingest"])
def test_a_local_checkpoint_renames_through_the_file_system(checkpoint):
    assert file_manager_conf(checkpoint) == {
        "spark.sql.streaming.checkpointFileManagerClass":
            "org.apache.spark.sql.execution.streaming.FileSystemBasedCheckpointFileManager"}


@pytest.mark.parametrize("checkpoint", ["hdfs://namenode:8020/lake/_checkpoints/ingest",
                                        "s3a://bucket/lake/_checkpoints/ingest"])
def test_a_remote_checkpoint_keeps_sparks_default(checkpoint):
    assert file_manager_conf(checkpoint) == {}


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_a_local_checkpoint_is_read_without_spark(tmp_path, scheme):
    (tmp_path / "offsets").mkdir()
    (tmp_path / "metadata").write_text('{"id":"5d1c4c2e-query"}\n')
    # An offset log file as Spark writes it: version, batch metadata, one line per source.
    (tmp_path / "offsets" / "3").write_text(
        'v1\n{"batchWatermarkMs":0,"batchTimestampMs":1}\n{"clickstream":{"1":40,"0":25}}')
    checkpoint = f"{scheme}{tmp_path}"
    assert logged_offsets(None, checkpoint, "clickstream", 3) == {"0": 25, "1": 40}
    assert query_id(None, checkpoint) == "5d1c4c2e-query"
