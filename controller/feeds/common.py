"""Shared validation for inbound MQTT payloads: strict JSON and typed field access.

Every parser here is pure: bytes and a time in, a frozen domain value or `FeedRejected` out.
The caller counts the rejection in `curtaild_messages_rejected_total{feed,reason}` and logs the
detail; nothing here logs, reads a clock or touches a device (CONTRACT I10).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal

# A closed set: each label becomes a Prometheus label value, so its cardinality must stay fixed.
RejectReason = Literal[
    "malformed_json",  # not UTF-8, not JSON, NaN/Infinity literals, duplicate keys, too deep
    "unknown_shape",  # valid JSON but not an object / record shape this feed knows
    "missing_field",  # a required key is absent or null
    "bad_field",  # wrong JSON type, bad text format, unknown enum value, inconsistent fields
    "out_of_range",  # right type, value outside its bounds
    "future",  # a price record stamped more than an hour ahead of now
    "missing_signature",
    "bad_signature",
    "replayed_nonce",
    "clock_skew",
    "expired",
]


class FeedRejected(Exception):  # noqa: N818 - a verdict on a message, not a fault
    """An inbound message failed validation; `reason` is the metric label, `detail` the why."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        self.reason: RejectReason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity by default; they are not JSON and never a valid value.
    raise ValueError(f"non-standard JSON literal {name}")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A duplicated key would let the signed text and the acted-on value disagree in other
    # JSON implementations; refuse the ambiguity instead of silently keeping the last.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def load_json(payload: bytes) -> Any:
    """Decode a payload as strict UTF-8 JSON; raise FeedRejected("malformed_json") otherwise."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FeedRejected("malformed_json", f"payload is not UTF-8: {exc}") from None
    try:
        return json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys
        )
    except RecursionError:
        raise FeedRejected("malformed_json", "payload nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, our hooks, int digit limits
        raise FeedRejected("malformed_json", f"payload is not valid JSON: {exc}") from None


def load_json_object(payload: bytes, what: str) -> dict[str, Any]:
    """Strict JSON that must be an object (`what` names the expected message in the detail)."""
    obj = load_json(payload)
    if not isinstance(obj, dict):
        raise FeedRejected(
            "unknown_shape", f"expected a JSON object ({what}), got {type_name(obj)}"
        )
    return obj


def peek_field(payload: bytes, key: str) -> Any:
    """A top-level field of a JSON object payload, or None: best effort, never raises.

    For answering a message that failed validation (its id) or reading our own documents.
    """
    try:
        obj = load_json(payload)
    except FeedRejected:
        return None
    return obj.get(key) if isinstance(obj, dict) else None


def type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages that say what came."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _shown(value: Any) -> str:
    text = json.dumps(value)  # inf (from 1e400) shows as Infinity
    return text if len(text) <= 60 else text[:57] + "..."


def require(obj: dict[str, Any], key: str) -> Any:
    """The value of a required key; absent or null is `missing_field`."""
    value = obj.get(key)
    if value is None:
        raise FeedRejected("missing_field", f"{key}: required")
    return value


def as_number(value: Any, key: str) -> float:
    """A finite JSON number (int or float, never a boolean or string) as float."""
    # bool is a subclass of int in Python; JSON true must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FeedRejected(
            "bad_field", f"{key}: expected a JSON number, got {type_name(value)} {_shown(value)}"
        )
    try:
        number = float(value)
    except OverflowError:
        raise FeedRejected("out_of_range", f"{key}: number too large") from None
    if not math.isfinite(number):
        raise FeedRejected("out_of_range", f"{key}: must be finite, got {number}")
    return number


def as_int(value: Any, key: str) -> int:
    """A JSON integer (1, not 1.0 and not true)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FeedRejected(
            "bad_field", f"{key}: expected a JSON integer, got {type_name(value)} {_shown(value)}"
        )
    return value


def as_str(value: Any, key: str, *, non_empty: bool = True) -> str:
    """A JSON string, non-empty unless told otherwise."""
    if not isinstance(value, str):
        raise FeedRejected(
            "bad_field", f"{key}: expected a string, got {type_name(value)} {_shown(value)}"
        )
    if non_empty and not value.strip():
        raise FeedRejected("bad_field", f"{key}: must not be empty")
    return value


def as_bool(value: Any, key: str) -> bool:
    """A JSON boolean (never 0/1 or "true")."""
    if not isinstance(value, bool):
        raise FeedRejected(
            "bad_field", f"{key}: expected true or false, got {type_name(value)} {_shown(value)}"
        )
    return value


def number_in(value: Any, key: str, low_incl: float, high_incl: float) -> float:
    """A finite JSON number within [low_incl, high_incl]."""
    number = as_number(value, key)
    if not low_incl <= number <= high_incl:
        raise FeedRejected(
            "out_of_range", f"{key}: {number:g} is outside [{low_incl:g}, {high_incl:g}]"
        )
    return number


def as_instant(value: Any, key: str) -> float:
    """ISO 8601 text WITH a UTC offset as epoch seconds; naive times are refused.

    A naive time would have to be guessed into a zone; CONTRACT section 0 requires the offset
    for every timestamp except the ERCOT fields, which `controller.feeds.ercot` handles.
    """
    text = as_str(value, key)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FeedRejected(
            "bad_field", f"{key}: expected ISO 8601 like 2024-01-16T18:02:00-06:00, got {text!r}"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise FeedRejected("bad_field", f"{key}: {text!r} has no UTC offset (add e.g. -06:00 or Z)")
    return moment.timestamp()
