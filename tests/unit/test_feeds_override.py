"""Operator overrides (CONTRACT 2.3, section 7 Override): fields, HMAC, skew, expiry, replay."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.errors import ConfigError
from controller.feeds.common import FeedRejected
from controller.feeds.override import (
    OverrideValidator,
    canonical_text,
    load_hmac_key,
    sign_override,
)
from controller.model import OverrideRequest

KEY = b"site-secret"
ISSUED = "2024-01-16T18:05:00-06:00"
ISSUED_EPOCH = datetime.fromisoformat(ISSUED).timestamp()
NOW = ISSUED_EPOCH + 2.0
NO_NONCES: frozenset[str] = frozenset()
_DROP = object()  # request(key=_DROP) removes the key

SIGNED = OverrideValidator(max_ttl_s=86400, max_clock_skew_s=120, hmac_key=KEY)
UNSIGNED = OverrideValidator(max_ttl_s=86400, max_clock_skew_s=120, hmac_key=None)


def request(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "mode": "curtail",
        "limit_kw": None,
        "ttl_s": 3600,
        "operator": "jdoe",
        "reason": "breaker work",
        "issued_at": ISSUED,
        "nonce": "5f1c",
        **changes,
    }
    return {key: value for key, value in obj.items() if value is not _DROP}


def signed(**changes: Any) -> bytes:
    return json.dumps(sign_override(request(**changes), KEY)).encode()


def unsigned(**changes: Any) -> bytes:
    return json.dumps(request(**changes)).encode()


def rejection(
    validator: OverrideValidator, payload: bytes, now: float = NOW, seen: frozenset[str] = NO_NONCES
) -> FeedRejected:
    with pytest.raises(FeedRejected) as caught:
        validator.validate(payload, now, seen)
    return caught.value


# --- accepted -------------------------------------------------------------------------------


def test_contract_example_signed() -> None:
    assert SIGNED.validate(signed(), NOW, NO_NONCES) == OverrideRequest(
        mode="curtail",
        limit_kw=None,
        expires_at=ISSUED_EPOCH + 3600,
        operator="jdoe",
        reason="breaker work",
        issued_at=ISSUED_EPOCH,
        nonce="5f1c",
    )


@pytest.mark.parametrize(
    ("changes", "mode", "limit_kw", "expires_at"),
    [
        ({"mode": "limit", "limit_kw": 2500.5}, "limit", 2500.5, ISSUED_EPOCH + 3600),
        ({"mode": "limit", "limit_kw": 0}, "limit", 0.0, ISSUED_EPOCH + 3600),
        ({"mode": "run", "ttl_s": 3}, "run", None, ISSUED_EPOCH + 3),
        ({"mode": "curtail", "ttl_s": 86400}, "curtail", None, ISSUED_EPOCH + 86400),
        ({"mode": "curtail", "limit_kw": 5}, "curtail", None, ISSUED_EPOCH + 3600),  # ignored
        ({"mode": "auto", "ttl_s": _DROP}, "auto", None, None),
        ({"mode": "auto", "ttl_s": 60.0}, "auto", None, None),  # ignored for auto
        ({"mode": "auto", "ttl_s": "junk"}, "auto", None, None),
    ],
)
def test_modes(
    changes: dict[str, Any], mode: str, limit_kw: float | None, expires_at: float | None
) -> None:
    parsed = SIGNED.validate(signed(**changes), NOW, NO_NONCES)
    assert (parsed.mode, parsed.limit_kw, parsed.expires_at) == (mode, limit_kw, expires_at)


def test_operator_and_reason_default_to_empty() -> None:
    parsed = UNSIGNED.validate(unsigned(operator=_DROP, reason=None), NOW, NO_NONCES)
    assert (parsed.operator, parsed.reason) == ("", "")


@pytest.mark.parametrize(
    "now", [ISSUED_EPOCH - 120, ISSUED_EPOCH + 120, ISSUED_EPOCH], ids=["ahead", "behind", "same"]
)
def test_skew_at_the_limit_is_accepted(now: float) -> None:
    assert UNSIGNED.validate(unsigned(), now, NO_NONCES).nonce == "5f1c"


def test_without_a_key_a_signature_is_not_needed_nor_checked() -> None:
    assert UNSIGNED.validate(unsigned(), NOW, NO_NONCES).mode == "curtail"
    assert UNSIGNED.validate(unsigned(sig="00"), NOW, NO_NONCES).mode == "curtail"


# --- signature ------------------------------------------------------------------------------


def test_known_answer_vector() -> None:
    """Pins the signed text independently of canonical_text: a CLI in any language can match."""
    obj = {"nonce": "n1", "mode": "curtail", "ttl_s": 60, "issued_at": ISSUED, "limit_kw": None}
    text = (
        '{"issued_at":"2024-01-16T18:05:00-06:00","limit_kw":null,"mode":"curtail",'
        '"nonce":"n1","ttl_s":60}'
    )
    assert canonical_text(obj) == text.encode()
    expected = hmac.new(KEY, text.encode(), hashlib.sha256).hexdigest()
    assert sign_override(obj, KEY)["sig"] == expected
    assert "sig" not in obj  # sign_override returns a copy


def test_signature_is_over_the_received_values_not_the_received_layout() -> None:
    obj = sign_override(request(mode="limit", limit_kw=5.0, operator="Jörg"), KEY)
    # Another key order, whitespace and \\u escapes: the same values, so the same signed text.
    payload = json.dumps(dict(reversed(obj.items())), indent=2, ensure_ascii=True).encode()
    parsed = SIGNED.validate(payload, NOW, NO_NONCES)
    assert (parsed.limit_kw, parsed.operator) == (5.0, "Jörg")
    unicode_payload = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    assert SIGNED.validate(unicode_payload, NOW, NO_NONCES).operator == "Jörg"


def test_five_and_five_point_zero_are_different_texts() -> None:
    obj = sign_override(request(mode="limit", limit_kw=5), KEY)
    sent = json.dumps(obj).replace('"limit_kw": 5', '"limit_kw": 5.0').encode()
    assert rejection(SIGNED, sent).reason == "bad_signature"


def test_uppercase_hex_is_the_same_signature() -> None:
    obj = sign_override(request(), KEY)
    obj["sig"] = obj["sig"].upper()
    assert SIGNED.validate(json.dumps(obj).encode(), NOW, NO_NONCES).mode == "curtail"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (unsigned(), "missing_signature"),
        (unsigned(sig=None), "missing_signature"),
        (unsigned(sig=""), "bad_signature"),
        (unsigned(sig="00" * 32), "bad_signature"),
        (unsigned(sig=12), "bad_signature"),
        (unsigned(sig="é" * 64), "bad_signature"),
        (json.dumps(sign_override(request(), b"other-key")).encode(), "bad_signature"),
        # Signed, then altered in flight.
        (signed().replace(b'"ttl_s": 3600', b'"ttl_s": 86400'), "bad_signature"),
        (signed().replace(b"curtail", b"run"), "bad_signature"),
        # The signature comes first: an unsigned sender learns nothing about other checks.
        (unsigned(mode="bogus", ttl_s=0), "missing_signature"),
    ],
)
def test_signature_rejections(payload: bytes, reason: str) -> None:
    assert rejection(SIGNED, payload).reason == reason


@given(
    operator=st.text(st.characters(categories=["L", "M", "N", "P", "S"]), max_size=20),
    reason=st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=40),
    ttl_s=st.integers(min_value=1, max_value=86400),
    limit_kw=st.one_of(
        st.integers(min_value=0, max_value=10**6),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
    ),
)
def test_property_signed_requests_verify_and_any_change_breaks_them(
    operator: str, reason: str, ttl_s: int, limit_kw: float
) -> None:
    obj = sign_override(
        request(mode="limit", operator=operator, reason=reason, ttl_s=ttl_s, limit_kw=limit_kw),
        KEY,
    )
    parsed = SIGNED.validate(json.dumps(obj).encode(), ISSUED_EPOCH, NO_NONCES)
    assert (parsed.operator, parsed.reason, parsed.limit_kw) == (operator, reason, limit_kw)
    tampered = {**obj, "reason": reason + "!"}
    assert rejection(SIGNED, json.dumps(tampered).encode()).reason == "bad_signature"


# --- field, time and replay rejections ------------------------------------------------------

REJECTIONS: list[tuple[str, bytes, str, str]] = [
    ("not json", b"mode=curtail", "malformed_json", "not valid JSON"),
    (
        "NaN limit",
        unsigned(mode="limit", limit_kw=1).replace(b": 1,", b": NaN,"),
        "malformed_json",
        "NaN",
    ),
    ("duplicate mode", b'{"mode": "auto", "mode": "run"}', "malformed_json", "duplicate key"),
    ("array", b"[]", "unknown_shape", "got array"),
    ("mode absent", unsigned(mode=_DROP), "missing_field", "mode: required"),
    ("mode unknown", unsigned(mode="off"), "bad_field", 'curtail, limit, run, auto, got "off"'),
    ("mode number", unsigned(mode=0), "bad_field", "mode: expected a string"),
    ("issued_at absent", unsigned(issued_at=_DROP), "missing_field", "issued_at"),
    ("issued_at naive", unsigned(issued_at="2024-01-16T18:05:00"), "bad_field", "no UTC offset"),
    ("issued_at epoch", unsigned(issued_at=ISSUED_EPOCH), "bad_field", "issued_at"),
    ("nonce absent", unsigned(nonce=_DROP), "missing_field", "nonce: required"),
    ("nonce empty", unsigned(nonce=""), "bad_field", "nonce: must not be empty"),
    ("nonce number", unsigned(nonce=5), "bad_field", "nonce: expected a string"),
    ("nonce too long", unsigned(nonce="x" * 257), "bad_field", "longer than 256"),
    ("ttl absent", unsigned(ttl_s=_DROP), "missing_field", "ttl_s: required"),
    ("ttl null", unsigned(mode="run", ttl_s=None), "missing_field", "ttl_s: required"),
    ("ttl float", unsigned(ttl_s=60.0), "bad_field", "ttl_s: expected a JSON integer"),
    ("ttl bool", unsigned(ttl_s=True), "bad_field", "ttl_s: expected a JSON integer"),
    ("ttl string", unsigned(ttl_s="3600"), "bad_field", "ttl_s"),
    ("ttl zero", unsigned(ttl_s=0), "out_of_range", "ttl_s: 0 is outside 1..86400"),
    ("ttl negative", unsigned(ttl_s=-5), "out_of_range", "ttl_s"),
    ("ttl above max", unsigned(ttl_s=86401), "out_of_range", "outside 1..86400"),
    ("limit absent", unsigned(mode="limit"), "missing_field", "limit_kw: required"),
    ("limit negative", unsigned(mode="limit", limit_kw=-1), "out_of_range", "limit_kw"),
    ("limit string", unsigned(mode="limit", limit_kw="500"), "bad_field", "limit_kw"),
    ("limit bool", unsigned(mode="limit", limit_kw=False), "bad_field", "limit_kw"),
    (
        "limit overflow",
        unsigned(mode="limit", limit_kw=1).replace(b": 1,", b": 1e999,"),
        "out_of_range",
        "finite",
    ),
    ("operator number", unsigned(operator=7), "bad_field", "operator"),
    ("reason list", unsigned(reason=["a"]), "bad_field", "reason"),
]


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_field_rejections(payload: bytes, reason: str, detail: str) -> None:
    caught = rejection(UNSIGNED, payload)
    assert caught.reason == reason
    assert detail in caught.detail


@pytest.mark.parametrize(
    ("payload", "now", "reason", "detail"),
    [
        (unsigned(), ISSUED_EPOCH + 121, "clock_skew", "issued_at is -121 s from now"),
        (unsigned(), ISSUED_EPOCH - 121, "clock_skew", "+121 s"),
        (unsigned(mode="auto"), ISSUED_EPOCH + 3600, "clock_skew", "-3600 s"),
        (unsigned(ttl_s=60), ISSUED_EPOCH + 100, "expired", "expired 40 s before it arrived"),
        (unsigned(ttl_s=60), ISSUED_EPOCH + 60, "expired", "expired 0 s"),
        (unsigned(ttl_s=60), ISSUED_EPOCH + 5000, "expired", "expired"),
    ],
)
def test_time_rejections(payload: bytes, now: float, reason: str, detail: str) -> None:
    caught = rejection(UNSIGNED, payload, now=now)
    assert (caught.reason, detail in caught.detail) == (reason, True)


def test_replayed_nonce() -> None:
    caught = rejection(SIGNED, signed(), seen=frozenset({"5f1c"}))
    assert caught.reason == "replayed_nonce"
    assert "'5f1c'" in caught.detail
    # The validator never records nonces itself: the caller does once it accepts.
    assert SIGNED.validate(signed(), NOW, set()).nonce == "5f1c"
    assert SIGNED.validate(signed(), NOW, set()).nonce == "5f1c"


# --- values a later stage could not handle (I10, CONTRACT 7) --------------------------------


def test_an_expiry_past_the_instant_window_is_out_of_range() -> None:
    """issued_at + ttl_s is printed in override/state: with a huge max_ttl_s it overflowed."""
    lax = OverrideValidator(max_ttl_s=10**500, max_clock_skew_s=120, hmac_key=None)
    for ttl_s in (10**400, 10**30, 3_000_000_000):  # 95 years: past 2100
        caught = rejection(lax, unsigned(ttl_s=ttl_s))
        assert caught.reason == "out_of_range"
        assert caught.detail.startswith("issued_at + ttl_s: ")
    assert lax.validate(unsigned(ttl_s=86_400 * 365), NOW, NO_NONCES).expires_at is not None


@pytest.mark.parametrize(
    "issued_at",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "1999-12-31T23:59:59Z"],
)
def test_issued_at_outside_the_window_is_out_of_range(issued_at: str) -> None:
    caught = rejection(UNSIGNED, unsigned(issued_at=issued_at), now=NOW)
    assert (caught.reason, caught.detail.split(":")[0]) == ("out_of_range", "issued_at")


TEXT_REJECTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("nonce NUL", {"nonce": "5f\x001c"}, "nonce"),
    ("nonce surrogate", {"nonce": "\ud800"}, "nonce"),
    ("nonce newline", {"nonce": "5f1c\n"}, "nonce"),
    ("operator NUL", {"operator": "jdoe\x00"}, "operator"),
    ("operator surrogate", {"operator": "j\udfffdoe"}, "operator"),
    ("operator newline", {"operator": "jdoe\nroot"}, "operator"),  # a forged log line
    ("operator 129 chars", {"operator": "j" * 129}, "operator"),
    ("reason NUL", {"reason": "breaker\x00work"}, "reason"),
    ("reason surrogate", {"reason": "breaker \ud83d work"}, "reason"),
    ("reason escape", {"reason": "\x1b[2Jbreaker work"}, "reason"),
    ("reason 1025 chars", {"reason": "r" * 1025}, "reason"),
    ("limit 1e308", {"mode": "limit", "limit_kw": 1e308}, "limit_kw"),
    ("limit above 10 GW", {"mode": "limit", "limit_kw": 10_000_000.5}, "limit_kw"),
]


@pytest.mark.parametrize(
    ("changes", "field"),
    [case[1:] for case in TEXT_REJECTIONS],
    ids=[case[0] for case in TEXT_REJECTIONS],
)
def test_text_and_numbers_that_cannot_be_kept_are_rejected(
    changes: dict[str, Any], field: str
) -> None:
    caught = rejection(UNSIGNED, unsigned(**changes))
    assert caught.reason in ("bad_field", "out_of_range")
    assert caught.detail.startswith(f"{field}: ")
    caught.detail.encode("ascii")


def test_what_people_type_is_kept() -> None:
    parsed = UNSIGNED.validate(
        unsigned(
            operator="Jörg Müller",
            reason="breaker work\n\tticket 42 — back by 18:00 🙂",
            nonce="n" * 256,
            mode="limit",
            limit_kw=10_000_000,
        ),
        NOW,
        NO_NONCES,
    )
    assert (parsed.operator, parsed.reason, parsed.nonce, parsed.limit_kw) == (
        "Jörg Müller",
        "breaker work\n\tticket 42 — back by 18:00 🙂",
        "n" * 256,
        10_000_000.0,
    )


# --- key file and construction --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "key"),
    [
        (b"site-secret\n", b"site-secret"),
        (b"site-secret\r\n", b"site-secret"),
        (b"site-secret\n\n\r\n", b"site-secret"),
        (b"  site secret \t\n", b"  site secret \t"),  # only CR/LF are trailing noise
        (b"\x00\xff binary", b"\x00\xff binary"),
    ],
)
def test_load_hmac_key(tmp_path: Path, content: bytes, key: bytes) -> None:
    path = tmp_path / "override.key"
    path.write_bytes(content)
    assert load_hmac_key(path) == key


def test_load_hmac_key_refuses_empty_and_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.key"
    empty.write_bytes(b"\r\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_hmac_key(empty)
    with pytest.raises(ConfigError, match="cannot read"):
        load_hmac_key(tmp_path / "absent.key")


@pytest.mark.parametrize(
    ("max_ttl_s", "skew_s", "key"),
    [(0, 120.0, None), (60, -1.0, None), (60, float("nan"), None), (60, 120.0, b"")],
)
def test_validator_refuses_bad_settings(max_ttl_s: int, skew_s: float, key: bytes | None) -> None:
    with pytest.raises(ValueError, match="must be"):
        OverrideValidator(max_ttl_s=max_ttl_s, max_clock_skew_s=skew_s, hmac_key=key)
