"""Shared validation for inbound MQTT payloads: strict JSON and typed field access.

Every parser here is pure: bytes and a time in, a frozen domain value or `FeedRejected` out.
The caller counts the rejection in `curtaild_messages_rejected_total{feed,reason}` and logs the
detail; nothing here logs, reads a clock or touches a device (CONTRACT I10).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
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


# Every instant a feed carries lies in [2000-01-01, 2100-01-01) UTC. ERCOT's nodal market, its
# reports and every device here postdate 2000, and nothing a site schedules reaches 2100; what
# falls outside is a wrong clock or a hostile message. The window also keeps every derived time
# (start + deadline_s, issued_at + ttl_s) deep inside datetime's years 1..9999, so no later
# stage (clock.iso, the state store) can overflow on a value we accepted (CONTRACT 7, I10).
INSTANT_MIN_S = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
INSTANT_MAX_S = datetime(2100, 1, 1, tzinfo=UTC).timestamp()  # exclusive
INSTANT_WINDOW = "[2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)"
# Ids (dispatch id, recall_id, settlement point, nonce, operator) are echoed in acks, events,
# logs and store rows. ERCOT and QSE ids are a few dozen characters; 128 leaves room for any
# gateway's prefixes while keeping one message from bloating every record that repeats it.
MAX_ID_CHARS = 128
# A power any message may name (override limit_kw; dispatch mw x 1000): the largest loads on the
# ERCOT grid are hundreds of MW, and 10 GW keeps every sum and product of powers finite and
# JSON-printable (a limit of 1e308 kW is a typo or an attack, never a site's setting).
MAX_POWER_KW = 10_000_000.0
# Free text a person typed (an override's reason): a sentence or two, never a document.
MAX_TEXT_CHARS = 1024
# Characters that may not appear in free text: C0/C1 controls other than tab and newline (they
# rewrite terminals and forge log lines), and lone surrogates, which are valid JSON ("\ud800")
# but cannot be encoded as UTF-8, so every later `.encode()` or SQLite bind of them would raise.
_BAD_TEXT_CHAR = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# How much of an offending value a rejection detail quotes (details are published and logged).
_SHOWN_CHARS = 60


class FeedRejected(Exception):  # noqa: N818 - a verdict on a message, not a fault
    """An inbound message failed validation; `reason` is the metric label, `detail` the why."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        self.reason: RejectReason = reason
        self.detail = detail
        # The message's own id when the parser got as far as a valid one: a rejected dispatch
        # instruction is still answered with its id (CONTRACT 2.2), and the audit keeps it.
        self.msg_id: str | None = None
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
            raise ValueError(f"duplicate key {key[:_SHOWN_CHARS]!r}")
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

    For reading our own documents; to answer a message that failed validation use `peek_id`.
    """
    try:
        obj = load_json(payload)
    except FeedRejected:
        return None
    return obj.get(key) if isinstance(obj, dict) else None


def peek_id(payload: bytes, key: str = "id") -> str | None:
    """The id of a (possibly rejected) message when it is a valid id, else None; never raises.

    A rejected dispatch instruction is still answered with its id (CONTRACT 2.2) and the audit
    keeps it (section 5), but an id that is not a string, too long or not printable would carry
    the very problem that got the message rejected into the ack, the event and the store row.
    """
    try:
        return as_id(peek_field(payload, key), key)
    except FeedRejected:
        return None


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


def shown(value: Any) -> str:
    """A value for a rejection detail: ASCII JSON text of at most 60 characters; never raises."""
    # A container is never dumped: it may be megabytes, or nested deeper than the encoder
    # recurses. Its size says enough.
    if isinstance(value, list):
        return f"({len(value)} item{'' if len(value) == 1 else 's'})"
    if isinstance(value, dict):
        return f"({len(value)} key{'' if len(value) == 1 else 's'})"
    if isinstance(value, str) and len(value) > _SHOWN_CHARS:
        value = value[:_SHOWN_CHARS]  # a 1 MB string is cut before it is escaped, not after
    try:
        text = json.dumps(value)  # ASCII: a lone surrogate shows as \ud800, 1e400 as Infinity
    except (ValueError, TypeError):  # an int beyond the digit limit; nothing else JSON gives
        text = f"<{type_name(value)}>"
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


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
            "bad_field", f"{key}: expected a JSON number, got {type_name(value)} {shown(value)}"
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
            "bad_field", f"{key}: expected a JSON integer, got {type_name(value)} {shown(value)}"
        )
    return value


def as_str(value: Any, key: str, *, non_empty: bool = True) -> str:
    """A JSON string, non-empty unless told otherwise."""
    if not isinstance(value, str):
        raise FeedRejected(
            "bad_field", f"{key}: expected a string, got {type_name(value)} {shown(value)}"
        )
    if non_empty and not value.strip():
        raise FeedRejected("bad_field", f"{key}: must not be empty")
    return value


def as_id(value: Any, key: str, max_chars: int = MAX_ID_CHARS) -> str:
    """A non-empty string of at most `max_chars` printable characters (spaces allowed).

    Printable excludes controls, lone surrogates and invisible format characters (U+200B), so
    an id reads the same in an ack, a log line and the audit export as it did on the wire.
    """
    text = as_str(value, key)
    if len(text) > max_chars:
        raise FeedRejected(
            "bad_field", f"{key}: longer than {max_chars} characters ({len(text)}): {shown(text)}"
        )
    if not text.isprintable():
        bad = next(char for char in text if not char.isprintable())
        raise FeedRejected(
            "bad_field",
            f"{key}: must be printable text; U+{ord(bad):04X} at index {text.index(bad)} "
            f"is not: {shown(text)}",
        )
    return text


def as_text(value: Any, key: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """A string (empty allowed) of at most `max_chars`, without controls other than tab and
    newline and without lone surrogates: free text a person typed."""
    text = as_str(value, key, non_empty=False)
    if len(text) > max_chars:
        raise FeedRejected("bad_field", f"{key}: longer than {max_chars} characters ({len(text)})")
    bad = _BAD_TEXT_CHAR.search(text)
    if bad is not None:
        raise FeedRejected(
            "bad_field",
            f"{key}: U+{ord(bad.group()):04X} at index {bad.start()} is not allowed in text "
            "(control characters and lone surrogates cannot be logged or stored)",
        )
    return text


def as_bool(value: Any, key: str) -> bool:
    """A JSON boolean (never 0/1 or "true")."""
    if not isinstance(value, bool):
        raise FeedRejected(
            "bad_field", f"{key}: expected true or false, got {type_name(value)} {shown(value)}"
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
    """ISO 8601 text WITH a UTC offset as epoch seconds, inside the instant window.

    Naive times are refused: a naive time would have to be guessed into a zone; CONTRACT section
    0 requires the offset for every timestamp except the ERCOT fields, which
    `controller.feeds.ercot` handles. Out of the window is `out_of_range` (see INSTANT_MIN_S).
    """
    text = as_str(value, key)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FeedRejected(
            "bad_field",
            f"{key}: expected ISO 8601 like 2024-01-16T18:02:00-06:00, got {shown(text)}",
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise FeedRejected(
            "bad_field", f"{key}: {shown(text)} has no UTC offset (add e.g. -06:00 or Z)"
        )
    try:
        epoch_s = moment.timestamp()
    except (OverflowError, ValueError):  # year 1 or 9999 shifted past datetime's range
        epoch_s = math.inf
    return instant_in_window(epoch_s, key, text)


def instant_in_window(epoch_s: float, key: str, sent: Any = None) -> float:
    """`epoch_s` if it lies in the instant window, else FeedRejected("out_of_range").

    For instants a parser computes (an ERCOT interval start, issued_at + ttl_s); `sent` is
    what the sender wrote, quoted in the detail (only on failure: this is the hot path).
    """
    if INSTANT_MIN_S <= epoch_s < INSTANT_MAX_S:
        return epoch_s
    raise outside_window(key, epoch_s if sent is None else sent)


def outside_window(key: str, sent: Any) -> FeedRejected:
    """The rejection of an instant outside the window; `sent` is what the sender wrote."""
    return FeedRejected(
        "out_of_range",
        f"{key}: {shown(sent)} is outside {INSTANT_WINDOW}; "
        "check the sender's clock and date fields",
    )
