"""Seeded bad inputs for the ingest: random bytes, bytes that are not UTF-8, truncated JSON, deep
nesting, wrong types, nulls, huge strings, and valid events with exactly one field broken or one
field the contract does not know. The same seed gives the same records, so the fuzz test on the
real stack and the unit test of the decoder judge the same inputs."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime

import orjson

from contract.decoder import text_fields
from contract.rules import field_rules
from simulator.timeline import GeneratorConfig, stream
from tests.helpers import set_field

SEED = 20261129
BAD_INPUTS = 10_000
VALID_EVENTS = 2_000
# Reasons a record gets when it is not a JSON object of the contract's shape at all: no single
# field is to blame. Deeply nested {"a": {"a": ...}} is an object, just one with none of the
# contract's fields, so it may also be missing its first required field.
SHAPELESS = {"invalid_json", "wrong_type", "oversized"}
ALLOWED = {"deep_nesting": SHAPELESS | {"missing_field"}}
OBJECT_FIELDS = ["user", "page", "geo", "device"]
REQUIRED = [rule.path for rule in field_rules() if rule.required]
# Free-text fields: neither a pattern nor an enum keeps a number or an object out of them.
TEXT_FIELDS = list(text_fields())


@dataclasses.dataclass(frozen=True)
class BadInput:
    kind: str
    value: bytes
    field: str | None = None  # the field the reason must name, when one field is broken


def _set(event: dict, path: str, value) -> dict:
    return set_field(event, path.split("."), value)


def _one_field_broken(rng: random.Random, event: dict) -> tuple[str, object]:
    """A field and a value that breaks exactly the contract's rule for it."""
    return rng.choice([
        ("event_id", "not-a-uuid"),
        ("event_type", rng.choice(["teleport", "PAGE_VIEW", ""])),
        ("event_ts", rng.choice(["2026-13-01T00:00:00.000Z", "yesterday", "2026-06-01 10:00:00"])),
        ("schema_version", rng.choice([0, 2, 99])),
        ("user.user_id", rng.choice(["", "u" * rng.randint(65, 400)])),
        ("user.session_id", rng.choice(["", "s" * rng.randint(65, 400)])),
        ("page.url", rng.choice(["ftp://x", "not a url", "https://" + "p" * 2100])),
        ("geo.country", rng.choice(["deu", "D", "12", ""])),
        ("geo.ip", rng.choice(["300.1.1.1", "1.2.3", "localhost", "1.2.3.4.5"])),
        ("device.type", rng.choice(["watch", "Desktop", ""])),
        ("device.user_agent", "A" * rng.randint(513, 3000)),
        ("geo.city", "c" * rng.randint(129, 1000)),
        # Any JSON value but a string where the contract says string.
        (rng.choice([f for f in TEXT_FIELDS if event.get(f.split(".")[0]) is not None]),
         rng.choice([12345, -0.5, True, False, {"a": 1}, ["x"]])),
        (rng.choice(REQUIRED), KeyError),
        (rng.choice(REQUIRED), None),
        # A key the contract does not know, at any level but the free-form properties.
        (rng.choice(["nickname", "user.nickname", "page.title", "geo.zip", "device.model"]),
         rng.choice(["x", 7, None, {"a": 1}, [], "referrer"])),
    ])


def generate_bad_inputs(valid: list[bytes], count: int, seed: int) -> list[BadInput]:
    rng = random.Random(seed)
    kinds = ["random_bytes", "not_utf8", "truncated", "deep_nesting", "wrong_object_type",
             "wrong_version_type", "huge", "one_field_broken", "one_field_broken", "one_field_broken"]
    inputs: list[BadInput] = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        base = rng.choice(valid)
        if kind == "random_bytes":
            value = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
            inputs.append(BadInput(kind, value))
        elif kind == "not_utf8":
            at = base.index(b'"city":"') + len(b'"city":"')
            stray = rng.choice([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x9f\x98"])
            inputs.append(BadInput(kind, base[:at] + stray + base[at:]))
        elif kind == "truncated":
            inputs.append(BadInput(kind, base[:rng.randint(1, len(base) - 1)]))
        elif kind == "deep_nesting":
            depth = rng.randint(200, 7_000)
            opening, closing = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
            inputs.append(BadInput(kind, opening * depth + b"1" + closing * depth))
        elif kind == "wrong_object_type":
            event = _set(orjson.loads(base), rng.choice(OBJECT_FIELDS),
                         rng.choice([1, "text", [1, 2], True]))
            inputs.append(BadInput(kind, orjson.dumps(event)))
        elif kind == "wrong_version_type":
            event = _set(orjson.loads(base), "schema_version", rng.choice(["1", 1.5, True, [1]]))
            inputs.append(BadInput(kind, orjson.dumps(event)))
        elif kind == "huge":
            event = _set(orjson.loads(base), "properties",
                         {"padding": "x" * rng.randint(17_000, 24_000)})
            inputs.append(BadInput(kind, orjson.dumps(event)))
        else:
            field, value = _one_field_broken(rng, orjson.loads(base))
            event = _set(orjson.loads(base), field, value)
            inputs.append(BadInput(kind, orjson.dumps(event), field))
    return inputs


def valid_events() -> list[bytes]:
    config = GeneratorConfig(events=VALID_EVENTS, seed=SEED, start=datetime(2026, 6, 1, tzinfo=UTC),
                             days=1)
    return [message.value for message in stream(config)]
