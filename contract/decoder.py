"""The contract as a decoder: typed msgspec Structs derived from the JSON Schema at start-up, and
the reason a record breaks the contract, derived from the same rules.

Two paths, one contract:
- `decoder()` reads a valid event in one strict pass (types, required fields, enums, constants,
  unknown fields, UTF-8). Patterns and lengths are left to the caller, which checks them a whole
  column at a time. It may refuse a record the contract allows; it never accepts one it refuses.
- `judge()` re-reads a record the fast path refused and names the first rule it breaks, in the
  order the ingest has always reported them. Only such records pay for it.

The reasons keep the meaning Spark's JSON reader gave them: a number, boolean, object or array in
a string field is read as its JSON text, which the field's pattern or enum then judges; a wrong
type in an integer, object or map field makes the whole record `wrong_type`.
"""

from __future__ import annotations

import json
import math
import re
import sys
from decimal import Decimal
from functools import cache
from typing import Any, Literal

import msgspec

from . import event_schema, max_event_bytes
from .rules import FieldRule, closed_objects, field_rules, json_types

PropertyValue = str | int | float | bool | None
MAX_NESTING = 1000  # Spark's JSON reader refuses a record nested deeper than this
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


def _struct_type(node: dict, name: str, required_here: bool) -> type:
    """A Struct for one object of the schema; a field the contract does not require may be
    absent or null, as the ingest has always read it."""
    required = set(node.get("required", [])) if required_here else set()
    fields = []
    for key, sub in node["properties"].items():
        kinds = [k for k in json_types(sub) if k != "null"]
        is_required = key in required and "null" not in json_types(sub)
        if kinds == ["object"] and "properties" in sub:
            kind: Any = _struct_type(sub, f"{name}_{key}", is_required)
        elif kinds == ["object"]:
            kind = dict[str, PropertyValue]
        elif "enum" in sub:
            kind = Literal[tuple(sub["enum"])]
        elif "const" in sub:
            kind = Literal[sub["const"]]
        else:
            kind = {"string": str, "integer": int, "number": float, "boolean": bool}[kinds[0]]
        fields.append((key, kind) if is_required else (key, kind | None, None))
    return msgspec.defstruct(name, fields, kw_only=True, forbid_unknown_fields=True)


@cache
def event_type() -> type:
    """The event as a Struct, nested Structs for its objects, derived from the JSON Schema."""
    return _struct_type(event_schema(), "Event", True)


@cache
def decoder() -> msgspec.json.Decoder:
    return msgspec.json.Decoder(event_type())


@cache
def rules() -> tuple[FieldRule, ...]:
    return tuple(field_rules())


@cache
def text_fields() -> tuple[str, ...]:
    """String fields with neither a pattern nor an enum: nothing else keeps a number, boolean,
    object or array out of them."""
    return tuple(r.path for r in rules() if r.is_string and r.pattern is None and r.enum is None)


def java_pattern(pattern: str) -> re.Pattern:
    """A contract pattern with the meaning Spark's (Java's) regex engine gives it: ASCII classes,
    and a final `$` that also matches before one trailing line terminator."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "(?:\r\n|[\n\r\u0085\u2028\u2029])?\\Z"
    return re.compile(pattern, re.ASCII)


def re2_pattern(pattern: str) -> str:
    """A contract pattern for a column-wise RE2 match that is never looser than Java's: Java's
    `\\s` also holds the vertical tab, RE2's does not."""
    spaces = "\\t\\n\\x0b\\f\\r "
    out, in_class, i = [], False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            pair = pattern[i:i + 2]
            out.append((spaces if in_class else f"[{spaces}]") if pair == "\\s" else pair)
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


def spark_text(value: object) -> str | None:
    """A JSON value as the text Spark's reader puts in a string field: strings as they are,
    numbers and booleans as Java prints them, objects and arrays as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return java_double(value)
    return _compact_json(value)


def java_double(value: float) -> str:
    """Java's Double.toString: plain notation from 10^-3 up to 10^7, else `d.dddE±n`."""
    if math.isnan(value) or math.isinf(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        return repr(value)
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) + exponent - 1
    return f"{'-' if sign else ''}{text[0]}.{text[1:] or '0'}E{power}"


def _compact_json(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{_compact_json(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_compact_json(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return "null" if value is None else spark_text(value)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _parse(text: str) -> object:
    """JSON as Spark's reader takes it: nested at most MAX_NESTING deep, no NaN or Infinity."""
    if text.count("[") + text.count("{") > MAX_NESTING and _nesting(text) > MAX_NESTING:
        raise ValueError(f"nested deeper than {MAX_NESTING}")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 2 * MAX_NESTING + 100))
    try:
        return json.loads(text, parse_constant=_reject_constant)
    finally:
        sys.setrecursionlimit(limit)


def _nesting(text: str) -> int:
    """How deep arrays and objects nest, outside strings."""
    depth = deepest = 0
    for char in _STRINGS.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _at(doc: object, path: str) -> object:
    for name in path.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(name)
    return doc


def _shape_is_wrong(doc: object, node: dict) -> bool:
    """True where Spark's reader could not read the record into the contract's shape at all: an
    object, integer or map field holding another kind of value."""
    if not isinstance(doc, dict):
        return True
    for key, sub in node["properties"].items():
        value = doc.get(key)
        if value is None:
            continue
        kinds = [k for k in json_types(sub) if k != "null"]
        if kinds == ["object"]:
            if not isinstance(value, dict) or ("properties" in sub and _shape_is_wrong(value, sub)):
                return True
        elif kinds == ["integer"] and (type(value) is not int or not -2**63 <= value < 2**63):
            return True
    return False


def judge(raw: bytes | None, max_bytes: int | None = None) -> tuple[str | None, dict | None]:
    """The first rule a record breaks, as its dead-letter reason, and the event it holds when it
    breaks none (its string fields as the text the lake stores)."""
    max_bytes = max_bytes or max_event_bytes()
    if not raw:
        return "invalid_json: empty message", None
    if len(raw) > max_bytes:
        return f"oversized: more than {max_bytes} bytes", None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_json: not UTF-8", None
    try:
        doc = _parse(text)
    except (ValueError, RecursionError):
        return "invalid_json", None
    if _shape_is_wrong(doc, event_schema()):
        return "wrong_type", None
    reason = _first_broken_rule(doc)
    return (reason, None) if reason else (None, _as_lake_text(doc))


def _first_broken_rule(doc: dict) -> str | None:
    for rule in rules():
        if rule.required and _at(doc, rule.path) is None:
            return f"missing_field: {rule.path}"
    for path in text_fields():
        if not isinstance(_at(doc, path), str | None):
            return f"wrong_type: {path} is not a string"
    for path, allowed in closed_objects().items():
        node = _at(doc, path) if path else doc
        if isinstance(node, dict):
            unknown = next((key for key in node if key not in allowed), None)
            if unknown is not None:
                return f"unknown_field: {path + '.' if path else ''}{unknown}"
    for rule in rules():
        reason = _rule_reason(rule, _at(doc, rule.path))
        if reason:
            return reason
    return None


def _rule_reason(rule: FieldRule, value: object) -> str | None:
    if value is None or isinstance(value, dict) and not rule.is_string:
        return None
    text = spark_text(value)
    if rule.const is not None and value != rule.const:
        return f"unsupported_version: {rule.path}"
    if rule.enum is not None and text not in rule.enum:
        return ("unknown_event_type: event_type" if rule.path == "event_type"
                else f"invalid_value: {rule.path}")
    if rule.pattern is not None and not _patterns()[rule.path].search(text):
        return "bad_timestamp: event_ts" if rule.path == "event_ts" else f"invalid_value: {rule.path}"
    if rule.path == "event_ts" and not _is_real_time(text):
        return "bad_timestamp: event_ts"
    if rule.min_length is not None and len(text) < rule.min_length:
        return f"invalid_value: {rule.path} " + (
            "is empty" if rule.min_length == 1 else f"shorter than {rule.min_length} characters")
    if rule.max_length is not None and len(text) > rule.max_length:
        return f"invalid_value: {rule.path} longer than {rule.max_length} characters"
    return None


@cache
def _patterns() -> dict[str, re.Pattern]:
    return {r.path: java_pattern(r.pattern) for r in rules() if r.pattern is not None}


def _is_real_time(text: str) -> bool:
    """A timestamp that matched the pattern names a real calendar day (not 30 February)."""
    from datetime import datetime

    try:
        datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return False
    return True


def _as_lake_text(doc: dict) -> dict:
    """A valid event with its free-form properties as text, the way the lake stores them, and no
    lone surrogate (an escape JSON allows) in any text: Java writes those as `?`."""
    properties = doc.get("properties")
    if isinstance(properties, dict):
        doc = {**doc, "properties": {k: spark_text(v) for k, v in properties.items()}}
    return _utf8(doc)


def _utf8(value):
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_utf8(k): _utf8(v) for k, v in value.items()}
    return value
