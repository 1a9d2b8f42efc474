"""QSE dispatch instructions (CONTRACT 2.2, section 7 Dispatch)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from controller.clock import iso
from controller.feeds.common import FeedRejected
from controller.feeds.dispatch import parse_dispatch
from controller.model import DispatchInstruction, DispatchType

T0 = "2024-01-16T18:02:00-06:00"
T0_EPOCH = datetime.fromisoformat(T0).timestamp()
RECEIVED_AT = T0_EPOCH + 0.25
MINING_KW = 42_000.0
_DROP = object()  # msg(type, key=_DROP) removes the key

BASE: dict[str, dict[str, Any]] = {
    "RRS": {"mw": 12.5},
    "ECRS": {"mw": 12.5},
    "NSRS": {"mw": 12.5},
    "ERS10": {"mw": 12.5},
    "ERS30": {"mw": 12.5},
    "CLR": {"mw": 12.5},
    "LIMIT": {"mw": 12.5},
    "EEA": {"level": 2},
    "4CP": {"start": "2024-08-20T16:00:00-05:00", "end": "2024-08-20T18:00:00-05:00"},
    "RECALL": {"recall_id": "VDI-1"},
    "HEARTBEAT": {},
    "AWARD": {
        "product": "RRS",
        "mw": 4.0,
        "start": "2024-01-16T19:00:00-06:00",
        "end": "2024-01-16T20:00:00-06:00",
    },
}


def msg(kind: str, **changes: Any) -> bytes:
    obj = {"id": "VDI-20240116-0042", "type": kind, "notified_at": T0, **BASE[kind], **changes}
    return json.dumps({k: v for k, v in obj.items() if v is not _DROP}).encode()


def parse(payload: bytes) -> DispatchInstruction:
    return parse_dispatch(payload, RECEIVED_AT, MINING_KW)


def test_contract_example() -> None:
    payload = (
        b'{"id": "VDI-20240116-0042", "type": "ECRS", "mw": 12.5,'
        b' "notified_at": "2024-01-16T18:02:00-06:00", "start": "2024-01-16T18:02:00-06:00",'
        b' "end": null, "deadline_s": 600}'
    )
    assert parse(payload) == DispatchInstruction(
        id="VDI-20240116-0042",
        type=DispatchType.ECRS,
        notified_at=T0_EPOCH,
        received_at=RECEIVED_AT,
        mining_kw_at_receipt=MINING_KW,
        mw=12.5,
        level=None,
        start=T0_EPOCH,
        end=None,
        deadline_s=600.0,
        recall_id=None,
    )


@pytest.mark.parametrize(
    ("kind", "mw", "level", "deadline_s"),
    [
        ("RRS", 12.5, None, 600.0),
        ("ECRS", 12.5, None, 600.0),
        ("ERS10", 12.5, None, 600.0),
        ("NSRS", 12.5, None, 1800.0),
        ("ERS30", 12.5, None, 1800.0),
        ("CLR", 12.5, None, 300.0),
        ("LIMIT", 12.5, None, 0.0),
        ("EEA", None, 2, 0.0),
        ("4CP", None, None, 0.0),
        ("RECALL", None, None, 0.0),
        ("HEARTBEAT", None, None, 0.0),
    ],
)
def test_each_type_and_its_default_deadline(
    kind: str, mw: float | None, level: int | None, deadline_s: float
) -> None:
    parsed = parse(msg(kind))
    assert parsed.type == DispatchType(kind)
    assert (parsed.mw, parsed.level, parsed.deadline_s) == (mw, level, deadline_s)
    assert parsed.received_at == RECEIVED_AT
    assert parsed.mining_kw_at_receipt == MINING_KW
    assert parsed.notified_at == T0_EPOCH
    assert parsed.recall_id == ("VDI-1" if kind == "RECALL" else None)
    if kind != "4CP":
        assert (parsed.start, parsed.end) == (T0_EPOCH, None)


def test_award_carries_its_product_and_window() -> None:
    parsed = parse(msg("AWARD"))
    assert parsed.type is DispatchType.AWARD
    assert (parsed.product, parsed.mw) == ("RRS", 4.0)
    assert parsed.start == datetime.fromisoformat("2024-01-16T19:00:00-06:00").timestamp()
    assert parsed.end == parsed.start + 3600
    assert parsed.deadline_s == 0.0


@pytest.mark.parametrize("product", ["RRS", "ECRS", "NSRS"])
def test_award_products(product: str) -> None:
    assert parse(msg("AWARD", product=product)).product == product


def test_award_running_now_with_its_end_ahead_is_accepted() -> None:
    parsed = parse(msg("AWARD", start="2024-01-16T17:00:00-06:00"))
    assert parsed.start is not None and parsed.end is not None
    assert parsed.start < RECEIVED_AT < parsed.end


def test_4cp_window() -> None:
    parsed = parse(msg("4CP"))
    assert parsed.start == datetime.fromisoformat("2024-08-20T21:00:00+00:00").timestamp()
    assert parsed.end == parsed.start + 7200


@pytest.mark.parametrize(
    ("payload", "field", "expected"),
    [
        (msg("RRS", mw=0), "mw", 0.0),
        (msg("LIMIT", mw=55), "mw", 55.0),
        (msg("ECRS", deadline_s=0), "deadline_s", 0.0),
        (msg("ECRS", deadline_s=90.5), "deadline_s", 90.5),
        (msg("ECRS", deadline_s=None), "deadline_s", 600.0),
        (msg("ECRS", end="2024-01-16T19:02:00-06:00"), "end", T0_EPOCH + 3600),
        (msg("ECRS", end=T0), "end", T0_EPOCH),  # zero-length: not before start
        (msg("ECRS", start="2024-01-17T00:10:00Z"), "start", T0_EPOCH + 480),
        (msg("ECRS", start=None), "start", T0_EPOCH),
        (msg("EEA", level=0), "level", 0),
        (msg("EEA", level=3, mw=None), "level", 3),
        (msg("EEA", mw="ignored: not an EEA field"), "mw", None),
        (msg("RECALL", mw=True, start="junk"), "start", T0_EPOCH),  # RECALL needs only 4 keys
        (msg("HEARTBEAT", qse="gw-2", seq=7), "type", DispatchType.HEARTBEAT),
        (msg("CLR", gateway={"site": "abilene-1"}, ercot_text="..."), "mw", 12.5),
    ],
)
def test_accepted_variants(payload: bytes, field: str, expected: Any) -> None:
    assert getattr(parse(payload), field) == expected


REJECTIONS: list[tuple[str, bytes, str, str]] = [
    ("not json", b"{", "malformed_json", "not valid JSON"),
    ("NaN mw", msg("RRS").replace(b"12.5", b"NaN"), "malformed_json", "NaN"),
    ("Infinity mw", msg("RRS").replace(b"12.5", b"Infinity"), "malformed_json", "Infinity"),
    ("array", b'[{"id": "x"}]', "unknown_shape", "got array"),
    ("string", b'"RRS"', "unknown_shape", "got string"),
    ("id absent", msg("RRS", id=_DROP), "missing_field", "id: required"),
    ("id null", msg("RRS", id=None), "missing_field", "id: required"),
    ("id empty", msg("RRS", id=""), "bad_field", "id: must not be empty"),
    ("id blank", msg("RRS", id="  "), "bad_field", "id: must not be empty"),
    ("id number", msg("RRS", id=42), "bad_field", "id: expected a string, got number 42"),
    ("type absent", msg("RRS", type=_DROP), "missing_field", "type: required"),
    ("type unknown", msg("RRS", type="SPIN"), "bad_field", 'unknown "SPIN"; known: RRS'),
    ("type lowercase", msg("RRS", type="rrs"), "bad_field", 'unknown "rrs"'),
    ("type number", msg("RRS", type=4), "bad_field", "type: expected a string"),
    ("notified_at absent", msg("RRS", notified_at=_DROP), "missing_field", "notified_at"),
    ("notified_at naive", msg("RRS", notified_at="2024-01-16T18:02:00"), "bad_field", "offset"),
    ("notified_at date", msg("RRS", notified_at="2024-01-16"), "bad_field", "no UTC offset"),
    ("notified_at garbage", msg("RRS", notified_at="now"), "bad_field", "ISO 8601"),
    ("notified_at epoch", msg("RRS", notified_at=1705449720), "bad_field", "string"),
    ("mw absent", msg("ERS30", mw=_DROP), "missing_field", "mw: required"),
    ("mw null", msg("CLR", mw=None), "missing_field", "mw: required"),
    ("mw string", msg("ECRS", mw="12.5"), "bad_field", 'got string "12.5"'),
    ("mw true", msg("NSRS", mw=True), "bad_field", "got boolean true"),
    ("mw false", msg("LIMIT", mw=False), "bad_field", "got boolean false"),
    ("mw array", msg("RRS", mw=[12.5]), "bad_field", "got array"),
    ("mw negative", msg("RRS", mw=-0.1), "out_of_range", "mw: -0.1 is outside [0, 10000]"),
    ("mw overflow", msg("RRS").replace(b"12.5", b"1e999"), "out_of_range", "finite"),
    ("level absent", msg("EEA", level=_DROP), "missing_field", "level: required"),
    ("level 4", msg("EEA", level=4), "out_of_range", "0-3, got 4"),
    ("level -1", msg("EEA", level=-1), "out_of_range", "0-3, got -1"),
    ("level float", msg("EEA", level=2.0), "bad_field", "JSON integer"),
    ("level true", msg("EEA", level=True), "bad_field", "JSON integer"),
    ("level string", msg("EEA", level="2"), "bad_field", "JSON integer"),
    ("4CP start absent", msg("4CP", start=_DROP), "missing_field", "start: required"),
    ("4CP end absent", msg("4CP", end=_DROP), "missing_field", "end: required"),
    ("4CP end null", msg("4CP", end=None), "missing_field", "end: required"),
    (
        "end before start",
        msg("4CP", end="2024-08-20T15:59:59-05:00"),
        "bad_field",
        "is before start",
    ),
    ("end before notified", msg("ECRS", end="2024-01-16T18:01:00-06:00"), "bad_field", "before"),
    ("end naive", msg("ECRS", end="2024-01-16T19:00:00"), "bad_field", "end:"),
    ("start number", msg("ECRS", start=0), "bad_field", "start:"),
    ("deadline negative", msg("RRS", deadline_s=-1), "out_of_range", "deadline_s"),
    ("deadline string", msg("RRS", deadline_s="600"), "bad_field", "deadline_s"),
    ("deadline bool", msg("RRS", deadline_s=True), "bad_field", "deadline_s"),
    ("recall_id absent", msg("RECALL", recall_id=_DROP), "missing_field", "recall_id"),
    ("recall_id empty", msg("RECALL", recall_id=""), "bad_field", "recall_id"),
    ("recall_id number", msg("RECALL", recall_id=17), "bad_field", "recall_id"),
    ("AWARD product absent", msg("AWARD", product=_DROP), "missing_field", "product: required"),
    ("AWARD product unknown", msg("AWARD", product="REGUP"), "bad_field", "known: RRS, ECRS"),
    ("AWARD product lower", msg("AWARD", product="rrs"), "bad_field", "product: unknown"),
    ("AWARD product number", msg("AWARD", product=1), "bad_field", "product:"),
    ("AWARD mw absent", msg("AWARD", mw=_DROP), "missing_field", "mw: required"),
    ("AWARD mw negative", msg("AWARD", mw=-1.0), "out_of_range", "mw:"),
    ("AWARD start absent", msg("AWARD", start=_DROP), "missing_field", "start: required"),
    ("AWARD end absent", msg("AWARD", end=_DROP), "missing_field", "end: required"),
    ("AWARD end null", msg("AWARD", end=None), "missing_field", "end: required"),
    (
        "AWARD end at start",
        msg("AWARD", end="2024-01-16T19:00:00-06:00"),
        "bad_field",
        "is not after start",
    ),
    (
        "AWARD already past",
        msg("AWARD", start="2024-01-16T17:00:00-06:00", end=T0),
        "bad_field",
        "already past",
    ),
]


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_rejections(payload: bytes, reason: str, detail: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        parse(payload)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


# --- values a later stage could not handle are rejected here (I10, CONTRACT 7) --------------

OUT_OF_RANGE: list[tuple[str, bytes, str]] = [
    # start + deadline_s once overflowed clock.iso() in dispatch/state and killed the daemon
    ("deadline 1e308", msg("ECRS", deadline_s=1e308), "deadline_s"),
    ("deadline 10**30", msg("ECRS", deadline_s=10**30), "deadline_s"),
    ("deadline over a day", msg("NSRS", deadline_s=86_400.5), "deadline_s"),
    ("mw 1e306", msg("CLR", mw=1e306), "mw"),  # x 1000 kW per MW is inf: cap_kw not JSON
    ("mw above 10 GW", msg("RRS", mw=10_000.001), "mw"),
    ("notified_at year 9999", msg("RRS", notified_at="9999-12-31T23:59:59-23:59"), "notified_at"),
    ("notified_at year 1", msg("RRS", notified_at="0001-01-01T00:00:00+01:00"), "notified_at"),
    ("notified_at 1999", msg("RRS", notified_at="1999-12-31T23:59:59Z"), "notified_at"),
    ("notified_at 2100", msg("RRS", notified_at="2100-01-01T00:00:00Z"), "notified_at"),
    ("start year 9999", msg("ECRS", start="9999-12-31T23:59:59+00:00"), "start"),
    ("end year 9999", msg("4CP", end="9999-12-31T23:59:59-23:59"), "end"),
    ("end 2100", msg("ECRS", end="2100-01-01T00:00:00Z"), "end"),
    ("RECALL notified_at year 1", msg("RECALL", notified_at="0001-01-01T00:00Z"), "notified_at"),
]


@pytest.mark.parametrize(
    ("payload", "field"), [case[1:] for case in OUT_OF_RANGE], ids=[c[0] for c in OUT_OF_RANGE]
)
def test_unrepresentable_values_are_out_of_range(payload: bytes, field: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        parse(payload)
    assert (caught.value.reason, caught.value.detail.split(":")[0]) == ("out_of_range", field)


@pytest.mark.parametrize(
    "payload",
    [
        msg("ECRS", deadline_s=86_400),
        msg("RRS", mw=10_000),
        msg("RRS", notified_at="2000-01-01T00:00:00Z"),
        msg("4CP", start="2099-12-31T00:00:00Z", end="2099-12-31T23:59:59.999+00:00"),
        msg("ECRS", start="2099-12-31T23:59:59Z", deadline_s=86_400),
    ],
)
def test_the_bounds_themselves_are_accepted_and_every_derived_time_prints(payload: bytes) -> None:
    parsed = parse(payload)
    start = parsed.start if parsed.start is not None else parsed.notified_at
    for instant in (parsed.notified_at, start, parsed.end, start + parsed.deadline_s):
        text = iso(instant)
        assert text is None or text[:2] in ("20", "21")


BAD_IDS: list[tuple[str, Any]] = [
    ("NUL", "VDI\x00-1"),
    ("lone surrogate", "VDI-\ud800"),
    ("newline", "VDI-1\n"),
    ("escape sequence", "\x1b[2JVDI"),
    ("zero-width space", "VDI\u200b-1"),
    ("129 characters", "V" * 129),
]


@pytest.mark.parametrize("field", ["id", "recall_id"])
@pytest.mark.parametrize(("text"), [c[1] for c in BAD_IDS], ids=[c[0] for c in BAD_IDS])
def test_ids_are_short_printable_text(field: str, text: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        parse(msg("RECALL", **{field: text}))
    assert caught.value.reason == "bad_field"
    assert caught.value.detail.startswith(f"{field}: ")
    assert len(caught.value.detail) < 200  # a 1 MB id is not echoed back whole
    caught.value.detail.encode("utf-8")  # and the detail itself can be published


def test_an_id_of_128_printable_characters_is_accepted() -> None:
    text = "VDI-ÉRCOT " + "x" * 118
    parsed = parse(msg("RECALL", id=text, recall_id=text))
    assert (parsed.id, parsed.recall_id) == (text, text)
