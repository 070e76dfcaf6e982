"""Events and source records from JSON Lines: one JSON object per line.

An event line:

    {"event_id": "e1", "occurred_at": "2026-11-28T10:00:00Z", "source": "web",
     "channel": "online", "type": "page_view",
     "identifiers": [{"type": "cookie", "value": "abc"}],
     "traits": {"first_name": "Ann"}, "properties": {"path": "/"}}

Identifiers may also be written compactly, {"cookie": "abc", "email": "ann@example.com"}. A
key this module does not know is an error rather than silently dropped data: it is usually
a typo (e.g. "identifier") that would otherwise lose every identifier of a file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from client.messages import (
    Event,
    Identifier,
    InputError,
    SourceRecord,
    identifier,
    parse_channel,
    parse_timestamp,
)

EVENT_KEYS = ("event_id", "occurred_at", "source", "channel", "type", "identifiers", "traits", "properties")
RECORD_KEYS = ("record_id", "source", "identifiers", "traits", "recorded_at")

T = TypeVar("T")


class JsonLinesError(InputError):
    """A bad line of a JSON Lines file; carries the line number so that the file can be fixed."""

    def __init__(self, line: int, message: str, name: str | None = None) -> None:
        where = f"{name}, line {line}" if name else f"line {line}"
        super().__init__(f"{where}: {message}")
        self.line = line


def event_from_json(obj: Mapping[str, Any]) -> Event:
    """An Event from one decoded JSON object; a missing occurred_at stays unset for the server to fill."""
    fields = _known_fields(obj, EVENT_KEYS, "event")
    event = Event(
        event_id=_text(fields, "event_id"),
        source=_text(fields, "source"),
        type=_text(fields, "type"),
        identifiers=_identifiers(fields.get("identifiers")),
        traits=_strings(fields, "traits"),
        properties=_strings(fields, "properties"),
    )
    event.channel = _field("channel", parse_channel, fields.get("channel"))
    if fields.get("occurred_at") is not None:
        event.occurred_at.CopyFrom(_field("occurred_at", parse_timestamp, fields["occurred_at"]))
    return event


def record_from_json(obj: Mapping[str, Any], *, default_source: str = "") -> SourceRecord:
    """A SourceRecord from one decoded JSON object; default_source fills in a record that names none."""
    fields = _known_fields(obj, RECORD_KEYS, "record")
    record = SourceRecord(
        record_id=_text(fields, "record_id"),
        source=_text(fields, "source") or default_source,
        identifiers=_identifiers(fields.get("identifiers")),
        traits=_strings(fields, "traits"),
    )
    if fields.get("recorded_at") is not None:
        record.recorded_at.CopyFrom(_field("recorded_at", parse_timestamp, fields["recorded_at"]))
    return record


def read_jsonl(lines: Iterable[str], convert: Callable[[Mapping[str, Any]], T], name: str | None = None) -> Iterator[T]:
    """Converts line by line, skipping blank lines; any error names the line (and the file, if given)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield convert(_decode(line))
        except InputError as exc:
            raise JsonLinesError(number, str(exc), name) from None


def _decode(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc.msg} at column {exc.colno}") from None


def _known_fields(obj: Any, keys: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise InputError(f"each {what} must be a JSON object, not {_json_type(obj)}")
    unknown = sorted(set(obj) - set(keys))
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise InputError(f"unknown key {names} in {what} (known keys: {', '.join(keys)})")
    return obj


def _field(key: str, parse: Callable[[Any], T], value: Any) -> T:
    try:
        return parse(value)
    except InputError as exc:
        raise InputError(f"{key}: {exc}") from None


def _text(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{key} must be a string, not {_json_type(value)}")
    return value


def _identifiers(value: Any) -> list[Identifier]:
    """Both written forms: a list of {"type", "value"} objects, or one {type: value} object."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [_identifier(kind, item) for kind, values in value.items() for item in _as_list(values)]
    if isinstance(value, list):
        return [_listed_identifier(position, item) for position, item in enumerate(value)]
    raise InputError(f"identifiers must be a list of {{type, value}} objects or a {{type: value}} object, "
                     f"not {_json_type(value)}")


def _listed_identifier(position: int, item: Any) -> Identifier:
    if not isinstance(item, Mapping) or set(item) != {"type", "value"}:
        raise InputError(f"identifiers[{position}] must be an object with exactly the keys type and value, "
                         f"got {json.dumps(item, ensure_ascii=False)}")
    if not isinstance(item["type"], str):
        raise InputError(f"identifiers[{position}].type must be a string, not {_json_type(item['type'])}")
    return _identifier(item["type"], item["value"])


def _identifier(kind: str, value: Any) -> Identifier:
    """Whole numbers are taken as text: loyalty and CRM ids often arrive as JSON numbers."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InputError(f"identifier {kind!r} must have a string value, not {_json_type(value)}")
    return identifier(kind, value)


def _as_list(values: Any) -> list[Any]:
    return values if isinstance(values, list) else [values]


def _strings(fields: Mapping[str, Any], key: str) -> dict[str, str]:
    """Traits and properties as text, the only value type of the API; a null means no value at all."""
    value = fields.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{key} must be a JSON object, not {_json_type(value)}")
    return {name: _as_text(item) for name, item in value.items() if item is not None}


def _as_text(value: Any) -> str:
    """Strings as they are; anything else as its JSON text: true becomes "true", not Python's "True"."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)
