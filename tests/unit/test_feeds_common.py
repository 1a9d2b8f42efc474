"""Strict JSON decoding and typed field access shared by every feed parser."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.feeds import FeedRejected
from controller.feeds.common import (
    as_bool,
    as_instant,
    as_int,
    as_number,
    as_str,
    load_json,
    load_json_object,
    number_in,
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
