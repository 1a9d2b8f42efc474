"""Pool agent state reports (CONTRACT 2.4)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.feeds.common import FeedRejected
from controller.feeds.pool_state import parse_pool_state, peek_seq
from controller.model import PoolTelemetry

MAX_KW = 3000.0
RECEIVED_AT = 1_705_450_000.0
_DROP = object()  # state(key=_DROP) removes the key


def state(**changes: Any) -> bytes:
    obj = {
        "seq": 17,
        "power_kw": 1185.2,
        "available_kw": 3000.0,
        "online": True,
        "at": "2024-01-16T18:20:00-06:00",
        **changes,
    }
    return json.dumps({k: v for k, v in obj.items() if v is not _DROP}).encode()


def test_contract_example() -> None:
    assert parse_pool_state(state(), MAX_KW, RECEIVED_AT) == PoolTelemetry(
        power_kw=1185.2, available_kw=3000.0, online=True, applied_seq=17, at=RECEIVED_AT
    )


@pytest.mark.parametrize(
    ("payload", "field", "expected"),
    [
        (state(online=_DROP), "online", True),
        (state(online=None), "online", True),
        (state(online=False), "online", False),
        (state(at=_DROP), "at", RECEIVED_AT),
        (state(at="2020-01-01T00:00:00Z"), "at", RECEIVED_AT),  # stamped on our clock
        (state(seq=0), "applied_seq", 0),
        (state(seq=2**40), "applied_seq", 2**40),
        (state(seq=2**53), "applied_seq", 2**53),
        (state(at="2099-12-31T23:59:59Z"), "at", RECEIVED_AT),
        (state(power_kw=0), "power_kw", 0.0),
        (state(power_kw=30000), "power_kw", 30000.0),  # 10x max_kw is the ceiling
        (state(available_kw=30000.0), "available_kw", 30000.0),
        (state(firmware="1.2.3", temps=[40, 41]), "power_kw", 1185.2),
    ],
)
def test_accepted(payload: bytes, field: str, expected: Any) -> None:
    assert getattr(parse_pool_state(payload, MAX_KW, RECEIVED_AT), field) == expected


REJECTIONS: list[tuple[str, bytes, str, str]] = [
    ("not json", b"{seq: 1}", "malformed_json", "not valid JSON"),
    (
        "NaN power",
        state(power_kw=1).replace(b'"power_kw": 1', b'"power_kw": NaN'),
        "malformed_json",
        "NaN",
    ),
    ("array", b"[17, 1185.2]", "unknown_shape", "got array"),
    ("seq absent", state(seq=_DROP), "missing_field", "seq: required"),
    ("seq negative", state(seq=-1), "out_of_range", "seq: -1 is outside 0..2**53"),
    # our next seq goes above it, and the store keeps seq as SQLite's 64-bit signed INTEGER
    ("seq 2**70", state(seq=2**70), "out_of_range", "seq: 1180591620717411303424 is outside"),
    ("seq 2**63", state(seq=2**63), "out_of_range", "outside 0..2**53"),
    ("seq 2**53 + 1", state(seq=2**53 + 1), "out_of_range", "outside 0..2**53"),
    ("seq 10**400", state(seq=10**400), "out_of_range", "seq: 10000000000"),
    ("seq float", state(seq=17.0), "bad_field", "seq: expected a JSON integer"),
    ("seq bool", state(seq=True), "bad_field", "seq: expected a JSON integer"),
    ("seq string", state(seq="17"), "bad_field", "seq"),
    ("power absent", state(power_kw=_DROP), "missing_field", "power_kw: required"),
    ("power string", state(power_kw="1185.2"), "bad_field", "power_kw: expected a JSON number"),
    ("power bool", state(power_kw=False), "bad_field", "got boolean"),
    ("power negative", state(power_kw=-0.5), "out_of_range", "power_kw: -0.5 is outside"),
    ("power too high", state(power_kw=30000.1), "out_of_range", "[0, 30000]"),
    (
        "power overflow",
        state(power_kw=1).replace(b'"power_kw": 1', b'"power_kw": 1e400'),
        "out_of_range",
        "finite",
    ),
    ("available absent", state(available_kw=_DROP), "missing_field", "available_kw"),
    ("available null", state(available_kw=None), "missing_field", "available_kw"),
    ("available negative", state(available_kw=-1), "out_of_range", "available_kw"),
    ("available string", state(available_kw="3000"), "bad_field", "available_kw"),
    ("online string", state(online="true"), "bad_field", "online: expected true or false"),
    ("online int", state(online=1), "bad_field", "online"),
    ("at naive", state(at="2024-01-16T18:20:00"), "bad_field", "at:"),
    ("at number", state(at=1705450000), "bad_field", "at:"),
    ("at year 9999", state(at="9999-12-31T23:59:59-23:59"), "out_of_range", "at:"),
    ("at year 1", state(at="0001-01-01T00:00:00+01:00"), "out_of_range", "at:"),
]


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_rejections(payload: bytes, reason: str, detail: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        parse_pool_state(payload, MAX_KW, RECEIVED_AT)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


def test_a_zero_rated_pool_accepts_only_zero() -> None:
    assert parse_pool_state(state(power_kw=0, available_kw=0), 0.0, RECEIVED_AT).power_kw == 0
    with pytest.raises(FeedRejected, match="out_of_range"):
        parse_pool_state(state(power_kw=0.1, available_kw=0), 0.0, RECEIVED_AT)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"seq": 17, "target_kw": 1200.0, "at": "x", "reason": "price"}', 17),
        (b'{"seq": 0}', 0),
        (b'{"seq": 9007199254740992}', 2**53),
        (b'{"seq": 9007199254740993}', None),  # our next seq would pass SQLite's INTEGER
        (b'{"seq": 1180591620717411303424}', None),  # 2**70
        (b'{"seq": -1}', None),
        (b'{"seq": 17.0}', None),
        (b'{"seq": true}', None),
        (b'{"seq": "17"}', None),
        (b"{}", None),
        (b"[17]", None),
        (b"", None),  # a cleared retained message
        (b"\xff", None),
    ],
)
def test_peek_seq_reads_only_a_seq_we_could_continue_from(
    payload: bytes, expected: int | None
) -> None:
    assert peek_seq(payload) == expected
