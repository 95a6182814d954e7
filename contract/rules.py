"""The contract's rules as data: requiredness, enums, patterns, constants and lengths of every
field, derived from the JSON Schema. Free of Spark and of any decoder, so every reader of the
contract (the ingest's decoder, its dead-letter reasons, the fuzz tests) walks the same list."""

from __future__ import annotations

from dataclasses import dataclass

from . import event_schema


def json_types(node: dict) -> list[str]:
    kind = node.get("type", "string")
    return [kind] if isinstance(kind, str) else list(kind)


@dataclass(frozen=True)
class FieldRule:
    path: str  # dotted path into the parsed struct, e.g. "user.session_id"
    required: bool
    enum: tuple | None = None
    pattern: str | None = None
    const: object = None
    min_length: int | None = None  # in characters, as JSON Schema counts them
    max_length: int | None = None
    is_string: bool = False  # the schema allows a string (or null) and nothing else
    nullable: bool = False  # the schema allows null


def field_rules() -> list[FieldRule]:
    """Requiredness, enums, patterns, constants and lengths of every field, in document order."""
    rules: list[FieldRule] = []

    def walk(node: dict, prefix: str, parent_required: bool):
        required = set(node.get("required", []))
        for name, sub in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            is_required = parent_required and name in required and "null" not in json_types(sub)
            rules.append(FieldRule(path, is_required, tuple(sub["enum"]) if "enum" in sub else None,
                                   sub.get("pattern"), sub.get("const"), sub.get("minLength"),
                                   sub.get("maxLength"),
                                   [k for k in json_types(sub) if k != "null"] == ["string"],
                                   "null" in json_types(sub)))
            if "properties" in sub:
                walk(sub, path + ".", is_required)

    walk(event_schema(), "", True)
    return rules


def closed_objects() -> dict[str, tuple[str, ...]]:
    """Objects whose schema allows no other keys (additionalProperties: false), by dotted path
    ("" for the event itself), with the keys they allow."""
    closed: dict[str, tuple[str, ...]] = {}

    def walk(node: dict, path: str):
        if node.get("additionalProperties") is False:
            closed[path] = tuple(node.get("properties", {}))
        for name, sub in node.get("properties", {}).items():
            if "properties" in sub:
                walk(sub, f"{path}.{name}" if path else name)

    walk(event_schema(), "")
    return closed


def nullable_fields() -> list[str]:
    """Dotted paths of the fields a valid event may send as an explicit null."""
    return [rule.path for rule in field_rules() if rule.nullable]
