"""The Dagster instance folder that `clickstream run` and `clickstream bench live` run against."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path


def ensure_instance(home: Path) -> Path:
    """Create `home` with the project's dagster.yaml (runs queued in two lanes) unless it has one."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        template = resources.files("stack").joinpath("templates", "dagster.yaml")
        shutil.copyfile(str(template), home / "dagster.yaml")
    return home
