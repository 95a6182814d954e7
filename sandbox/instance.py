"""The Dagster instance folder that `clickstream run` and `clickstream bench live` run against."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import yaml

# sha256 of each dagster.yaml earlier versions of the project wrote: their run lanes were tags
# that a backfill launched from the UI does not carry. A copy nobody edited is brought up to date.
EARLIER_TEMPLATES = frozenset({
    "10eb6f0833583d62eaa184e12d3d18998137d89233bd2c66eee0b9525208ec13",
    "cfbb94f2447d6db9ad84d78a1dded7d16fff784c872fd2588db4726f74204127",
    "d89ab73032c8fef3c51f99ad3e85545d4ccd8170b9200531e8ed7392c2c1d31e",
})


def ensure_instance(home: Path) -> str | None:
    """Give `home` the project's dagster.yaml (runs queued in two lanes) unless it has one of its
    own. Returns what the caller should tell the user: an earlier copy replaced, or a file of the
    user's whose lanes let backfills run beside the daily runs."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    template = resources.files("stack").joinpath("templates", "dagster.yaml").read_bytes()
    if not config.exists():
        config.write_bytes(template)
        return None
    current = config.read_bytes()
    if hashlib.sha256(current).hexdigest() in EARLIER_TEMPLATES:
        config.write_bytes(template)
        return (f"{config}: replaced the earlier project template with today's, whose lanes are "
                "pools that hold backfills launched from the UI too")
    pools = ((yaml.safe_load(current) or {}).get("concurrency") or {}).get("pools") or {}
    if pools.get("granularity") != "run" or pools.get("default_limit") != 1:
        return (f"{config} is your own and kept, but it does not queue runs in the project's "
                "lanes (concurrency: pools: granularity: run, default_limit: 1), so a backfill can "
                "write a day beside another run; see stack/templates/dagster.yaml")
    return None
