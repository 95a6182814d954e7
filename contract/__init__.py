"""The event contract: the versioned JSON Schema, with the rules (rules.py) and the decoder
(decoder.py) derived from it."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

SCHEMA_FILE = "clickstream_event.v1.json"


@cache
def event_schema() -> dict:
    return json.loads(resources.files(__package__).joinpath(SCHEMA_FILE).read_text())


def event_types() -> list[str]:
    return list(event_schema()["properties"]["event_type"]["enum"])


def max_event_bytes() -> int:
    return int(event_schema()["x-max-bytes"])
