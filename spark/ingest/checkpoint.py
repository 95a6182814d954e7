"""What the ingest has consumed, read from its checkpoint without starting Spark."""

from __future__ import annotations

import json
from pathlib import Path


def committed_offsets(checkpoint: str, topic: str) -> dict[str, int] | None:
    """End offsets of the last committed micro-batch; {} before the first, None when the
    checkpoint is not on a local filesystem (then callers rely on their own cursor)."""
    if "://" in checkpoint and not checkpoint.startswith("file://"):
        return None
    root = Path(checkpoint.removeprefix("file://"))
    commits = [int(p.name) for p in (root / "commits").glob("*") if p.name.isdigit()]
    if not commits:
        return {}
    lines = (root / "offsets" / str(max(commits))).read_text().splitlines()
    return {p: int(o) for p, o in json.loads(lines[2])[topic].items()}
