"""Strict JSON decoding and typed field access shared by every feed parser."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.clock import iso
from controller.feeds import FeedRejected
from controller.feeds.common import (
    INSTANT_MAX_S,
    INSTANT_MIN_S,
    MAX_ID_CHARS,
    as_bool,
    as_id,
    as_instant,
    as_int,
    as_number,
    as_str,
    as_text,
    instant_in_window,
    load_json,
    load_json_object,
    number_in,
    peek_id,
    require,
)
from controller.feeds.dispatch import parse_dispatch
from controller.feeds.override import OverrideValidator
from controller.feeds.pool_state import parse_pool_state
from controller.feeds.price import parse_hashprice, parse_price_payload


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (b"", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"NaN", "NaN"),
        (b"[Infinity]", "Infinity"),
        (b'{"a": -Infinity}', "-Infinity"),
        (b'{"a": 1, "a": 1}', "duplicate key 'a'"),
        (b'{"a": {"b": 1, "b": 2}}', "duplicate key 'b'"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
        (b"1" * 5000, "not valid JSON"),  # beyond Python's int digit limit
        (b'{"a": 1} trailing', "not valid JSON"),
    ],
)
def test_load_json_rejects(payload: bytes, detail: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        load_json(payload)
    assert caught.value.reason == "malformed_json"
    assert detail in caught.value.detail


def test_load_json_accepts_plain_json() -> None:
    assert load_json(b' {"a": [1, 2.5, "x", true, null]} ') == {"a": [1, 2.5, "x", True, None]}
    assert load_json(b"1e400") == float("inf")  # overflow is caught where a number is read


def test_load_json_object_names_what_it_wanted() -> None:
    with pytest.raises(FeedRejected, match="unknown_shape: expected a JSON object \\(a thing\\)"):
        load_json_object(b"null", "a thing")


@pytest.mark.parametrize(
    ("call", "value", "reason"),
    [
        (as_number, True, "bad_field"),
        (as_number, "1", "bad_field"),
        (as_number, None, "bad_field"),
        (as_number, float("inf"), "out_of_range"),
        (as_number, 10**400, "out_of_range"),
        (as_int, 1.0, "bad_field"),
        (as_int, False, "bad_field"),
        (as_str, "", "bad_field"),
        (as_str, 1, "bad_field"),
        (as_bool, 1, "bad_field"),
        (as_bool, "false", "bad_field"),
        (as_instant, "2024-01-16T18:00:00", "bad_field"),
        (as_instant, "not a time", "bad_field"),
        (as_instant, {"t": 1}, "bad_field"),
    ],
)
def test_typed_access_rejects(call: Any, value: Any, reason: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        call(value, "field")
    assert caught.value.reason == reason
    assert caught.value.detail.startswith("field:")


def test_typed_access_accepts() -> None:
    assert as_number(3, "x") == 3.0
    assert isinstance(as_number(3, "x"), float)
    assert as_int(-2, "x") == -2
    assert as_str("", "x", non_empty=False) == ""
    assert as_bool(False, "x") is False
    assert number_in(5, "x", 0, 5) == 5.0
    assert as_instant("2024-01-17T00:00:00Z", "x") == 1_705_449_600.0
    assert as_instant("2024-01-16T18:00:00-06:00", "x") == 1_705_449_600.0
    assert require({"x": 0}, "x") == 0


def test_long_values_are_shortened_in_details() -> None:
    with pytest.raises(FeedRejected) as caught:
        as_number("y" * 1000, "x")
    assert len(caught.value.detail) < 120


# --- values that a later stage could not handle (I10, CONTRACT 7) ----------------------------


@pytest.mark.parametrize(
    "text",
    [
        "9999-12-31T23:59:59-23:59",  # past datetime.max in UTC: iso() raised OverflowError
        "0001-01-01T00:00:00+01:00",  # before datetime.min in UTC: iso() raised ValueError
        "1999-12-31T23:59:59.999Z",
        "2100-01-01T00:00:00Z",
        "2099-12-31T19:00:00-05:00",  # 2100-01-01T00:00Z: the end is exclusive
    ],
)
def test_instants_outside_the_window_are_out_of_range(text: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        as_instant(text, "at")
    assert caught.value.reason == "out_of_range"
    assert caught.value.detail.startswith(f'at: "{text}" is outside [2000-01-01T00:00:00Z,')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2000-01-01T00:00:00Z", INSTANT_MIN_S),
        ("1999-12-31T18:00:00-06:00", INSTANT_MIN_S),
        ("2099-12-31T23:59:59.999+00:00", INSTANT_MAX_S - 0.001),
    ],
)
def test_the_window_edges_are_accepted_and_print(text: str, expected: float) -> None:
    epoch_s = as_instant(text, "at")
    assert epoch_s == pytest.approx(expected, abs=1e-6)
    assert iso(epoch_s + 86_400.0) is not None  # a day beyond still prints: derived times do


@pytest.mark.parametrize("epoch_s", [math.nan, math.inf, -math.inf, 1e308, -1.0, INSTANT_MAX_S])
def test_computed_instants_outside_the_window(epoch_s: float) -> None:
    with pytest.raises(FeedRejected) as caught:
        instant_in_window(epoch_s, "issued_at + ttl_s")
    assert caught.value.reason == "out_of_range"
    assert caught.value.detail.startswith("issued_at + ttl_s: ")


@pytest.mark.parametrize(
    "text", ["VDI-20240116-0042", "HB_WEST", "jane doe", "Müller", "x" * MAX_ID_CHARS, "5f1c"]
)
def test_as_id_accepts_short_printable_text(text: str) -> None:
    assert as_id(text, "id") == text


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("x" * (MAX_ID_CHARS + 1), "id: longer than 128 characters (129)"),
        ("a" * 10**6, "id: longer than 128 characters (1000000)"),
        ("VDI\x00", "U+0000 at index 3 is not"),
        ("\ud800", "U+D800 at index 0"),
        ("a\tb", "U+0009"),
        ("a\u2028b", "U+2028"),  # line separator: splits log lines like a newline
        ("\u200b", "U+200B"),  # zero-width space: two ids that look the same
        ("", "id: must not be empty"),
        (7, "id: expected a string, got number 7"),
    ],
)
def test_as_id_rejects(value: Any, detail: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        as_id(value, "id")
    assert caught.value.reason == "bad_field"
    assert detail in caught.value.detail
    assert len(caught.value.detail) < 200
    caught.value.detail.encode("ascii")  # publishable and loggable as it is


def test_as_text_allows_what_people_type_and_nothing_that_breaks_a_log() -> None:
    assert as_text("", "reason") == ""
    assert as_text("breaker work\n\tticket 42 — Müller", "reason") == (
        "breaker work\n\tticket 42 — Müller"
    )
    for bad in ("a\x00", "\udfff", "\x1b[31m", "a\rb", "\x85", "x" * 1025):
        with pytest.raises(FeedRejected) as caught:
            as_text(bad, "reason")
        assert caught.value.reason == "bad_field"
        caught.value.detail.encode("ascii")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"id": "VDI-1", "type": "?"}', "VDI-1"),
        (b'{"id": "VDI-\\ud800"}', None),
        (b'{"id": "' + b"x" * 129 + b'"}', None),
        (b'{"id": 42}', None),
        (b'{"id": ["VDI-1"]}', None),
        (b'["VDI-1"]', None),
        (b"\xff", None),
        (b"{", None),
    ],
)
def test_peek_id_gives_only_ids_that_can_be_echoed(payload: bytes, expected: str | None) -> None:
    assert peek_id(payload) == expected


def test_details_never_dump_a_whole_container() -> None:
    deep: list[Any] = []
    for _ in range(100_000):  # deeper than json.dumps recurses: once a RecursionError
        deep = [deep]
    for value in (deep, {"k": deep}, list(range(10**6))):
        with pytest.raises(FeedRejected) as caught:
            as_number(value, "mw")
        assert caught.value.detail in (
            "mw: expected a JSON number, got array (1 item)",
            "mw: expected a JSON number, got object (1 key)",
            "mw: expected a JSON number, got array (1000000 items)",
        )


# --- property: no input makes a parser raise anything but FeedRejected (CONTRACT I10) -------

_KEYS = [
    # price, dispatch, override and pool-state field names, so generated objects get past
    # the shape checks and into field validation
    "deliveryDate", "deliveryHour", "deliveryInterval", "settlementPoint", "settlementPointType",
    "settlementPointPrice", "DSTFlag", "SCEDTimestamp", "repeatHourFlag", "LMP", "fields",
    "data", "name", "usd_per_ph_day", "id", "type", "mw", "level", "notified_at", "start",
    "end", "deadline_s", "recall_id", "mode", "limit_kw", "ttl_s", "operator", "reason",
    "issued_at", "nonce", "sig", "seq", "power_kw", "available_kw", "online", "at",
]  # fmt: skip
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(
        [
            "2024-01-16",
            "2024-11-03T01:20:00",
            "2024-01-16T18:02:00-06:00",
            "RRS",
            "EEA",
            "4CP",
            "RECALL",
            "limit",
            "auto",
            "HB_WEST",
            "2024-03-10T02:30:00",
        ]
    ),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(_KEYS), children, max_size=8),
    ),
    max_leaves=10,
)


# A fifth of the profile's examples: generation dominates the cost, and `make fuzz` still
# scales it up through HYPOTHESIS_PROFILE.
@settings(max_examples=max(20, settings().max_examples // 5))
@given(st.one_of(st.binary(max_size=64), _VALUES.map(lambda v: json.dumps(v).encode())))
def test_property_parsers_only_ever_reject(payload: bytes) -> None:
    parsers: list[Callable[[bytes], object]] = [
        lambda p: parse_price_payload(p, 1.7e9),
        parse_hashprice,
        lambda p: parse_dispatch(p, 1.7e9, 100.0),
        lambda p: parse_pool_state(p, 3000.0, 1.7e9),
        lambda p: OverrideValidator(3600, 120.0, None).validate(p, 1.7e9, frozenset()),
        lambda p: OverrideValidator(3600, 120.0, b"k").validate(p, 1.7e9, frozenset()),
    ]
    for parse in parsers:
        with contextlib.suppress(FeedRejected):
            parse(payload)
