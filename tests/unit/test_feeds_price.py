"""Price feed payloads (CONTRACT 2.1), the acting-price book and live hashprice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.feeds.common import FeedRejected
from controller.feeds.price import PriceBook, parse_hashprice, parse_price_payload
from controller.model import ActingPrice, PriceProduct, PriceRecord

NOW = datetime(2024, 1, 17, 1, 0, tzinfo=UTC).timestamp()  # 19:00 CST on 2024-01-16
RT: dict[str, Any] = {
    "deliveryDate": "2024-01-16",
    "deliveryHour": 19,
    "deliveryInterval": 2,
    "settlementPoint": "HB_WEST",
    "settlementPointType": "HU",
    "settlementPointPrice": 1174.66,
    "DSTFlag": False,
}
SCED: dict[str, Any] = {
    "SCEDTimestamp": "2024-01-16T18:20:12",
    "repeatHourFlag": False,
    "settlementPoint": "HB_WEST",
    "LMP": 1201.3,
}


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


_DROP = object()  # with_(record, key=_DROP) removes the key


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**base, **changes}
    return {key: value for key, value in out.items() if value is not _DROP}


def envelope(rows: list[dict[str, Any]]) -> dict[str, Any]:
    names = list(rows[0])
    return {
        "_meta": {"totalRecords": len(rows)},
        "fields": [{"name": name, "label": name, "dataType": "x"} for name in names],
        "data": [[row[name] for name in names] for row in rows],
    }


# --- accepted payloads ----------------------------------------------------------------------


def test_one_905_record() -> None:
    assert parse_price_payload(encode(RT), NOW) == [
        PriceRecord("rt_spp", "HB_WEST", utc("2024-01-17T00:15"), 1174.66)
    ]


def test_one_788_record() -> None:
    assert parse_price_payload(encode(SCED), NOW) == [
        PriceRecord("sced_lmp", "HB_WEST", utc("2024-01-17T00:20:12"), 1201.3)
    ]


@pytest.mark.parametrize(
    ("record", "expected_utc"),
    [
        (with_(RT, deliveryDate="2024-11-03", deliveryHour=2, DSTFlag=False), "2024-11-03T06:15"),
        (with_(RT, deliveryDate="2024-11-03", deliveryHour=2, DSTFlag=True), "2024-11-03T07:15"),
        (with_(SCED, SCEDTimestamp="2024-11-03T01:20:00"), "2024-11-03T06:20"),
        (with_(SCED, SCEDTimestamp="2024-11-03T01:20:00", repeatHourFlag=True), "2024-11-03T07:20"),
        (
            with_(RT, deliveryDate="2024-03-10", deliveryHour=4, deliveryInterval=1),
            "2024-03-10T08:00",
        ),
        (with_(RT, settlementPointType=_DROP), "2024-01-17T00:15"),  # type is informative only
        (with_(RT, extra="ignored", settlementPointPrice=-251), "2024-01-17T00:15"),
        (with_(RT, settlementPointPrice=100000), "2024-01-17T00:15"),
        (with_(RT, settlementPointPrice=-10000), "2024-01-17T00:15"),
        (with_(SCED, LMP=5), "2024-01-17T00:20:12"),  # a JSON integer is a number too
    ],
)
def test_record_times(record: dict[str, Any], expected_utc: str) -> None:
    (parsed,) = parse_price_payload(encode(record), utc("2024-11-04T00:00"))
    assert parsed.interval_start == utc(expected_utc)


def test_exactly_one_hour_ahead_is_accepted() -> None:
    (parsed,) = parse_price_payload(encode(RT), utc("2024-01-16T23:15"))
    assert parsed.interval_start == utc("2024-01-17T00:15")


def test_envelopes_of_either_report() -> None:
    rows = [RT, with_(RT, settlementPoint="HB_NORTH", settlementPointPrice=900)]
    parsed = parse_price_payload(encode(envelope(rows)), NOW)
    assert [(r.settlement_point, r.price_usd_per_mwh) for r in parsed] == [
        ("HB_WEST", 1174.66),
        ("HB_NORTH", 900.0),
    ]
    parsed = parse_price_payload(encode(envelope([SCED, with_(SCED, LMP=1)])), NOW)
    assert [r.product for r in parsed] == ["sced_lmp", "sced_lmp"]


def test_empty_envelope_carries_nothing() -> None:
    assert parse_price_payload(b'{"fields": [{"name": "LMP"}], "data": []}', NOW) == []


# --- rejected payloads ----------------------------------------------------------------------

REJECTIONS: list[tuple[str, bytes, str, str]] = [
    ("not json", b"{deliveryDate", "malformed_json", "not valid JSON"),
    ("not utf-8", b'{"LMP": "\xff"}', "malformed_json", "not UTF-8"),
    ("NaN literal", encode(RT).replace(b"1174.66", b"NaN"), "malformed_json", "NaN"),
    ("Infinity literal", encode(RT).replace(b"1174.66", b"Infinity"), "malformed_json", "Inf"),
    ("-Infinity", encode(SCED).replace(b"1201.3", b"-Infinity"), "malformed_json", "Infinity"),
    ("duplicate key", b'{"LMP": 1, "LMP": 2}', "malformed_json", "duplicate key 'LMP'"),
    ("array", b"[1, 2]", "unknown_shape", "got array"),
    ("number", b"42.0", "unknown_shape", "got number"),
    ("empty object", b"{}", "unknown_shape", "NP6-905-CD record"),
    ("both shapes", encode({**RT, **SCED}), "unknown_shape", "got keys"),
    ("price string", encode(with_(RT, settlementPointPrice="1174.66")), "bad_field", "string"),
    ("price bool", encode(with_(RT, settlementPointPrice=True)), "bad_field", "got boolean"),
    ("price null", encode(with_(RT, settlementPointPrice=None)), "missing_field", "Price"),
    ("price absent", encode(with_(RT, settlementPointPrice=_DROP)), "missing_field", "Price"),
    ("price overflow", encode(RT).replace(b"1174.66", b"1e400"), "out_of_range", "finite"),
    (
        "price too high",
        encode(with_(RT, settlementPointPrice=100000.01)),
        "out_of_range",
        "outside",
    ),
    ("price too low", encode(with_(RT, settlementPointPrice=-10001)), "out_of_range", "outside"),
    ("LMP bool", encode(with_(SCED, LMP=False)), "bad_field", "LMP: expected a JSON number"),
    ("LMP huge int", encode(with_(SCED, LMP=10**400)), "out_of_range", "LMP"),
    ("hour string", encode(with_(RT, deliveryHour="19")), "bad_field", "deliveryHour"),
    ("hour float", encode(with_(RT, deliveryHour=19.0)), "bad_field", "JSON integer"),
    ("hour bool", encode(with_(RT, deliveryHour=True)), "bad_field", "deliveryHour"),
    ("hour 0", encode(with_(RT, deliveryHour=0)), "out_of_range", "deliveryHour: 0"),
    ("hour 25", encode(with_(RT, deliveryHour=25)), "out_of_range", "deliveryHour: 25"),
    ("interval 5", encode(with_(RT, deliveryInterval=5)), "out_of_range", "deliveryInterval"),
    ("interval absent", encode(with_(RT, deliveryInterval=_DROP)), "missing_field", "Interval"),
    ("US date", encode(with_(RT, deliveryDate="01/16/2024")), "bad_field", "YYYY-MM-DD"),
    ("basic date", encode(with_(RT, deliveryDate="20240116")), "bad_field", "YYYY-MM-DD"),
    ("no such day", encode(with_(RT, deliveryDate="2024-02-30")), "bad_field", "YYYY-MM-DD"),
    ("date number", encode(with_(RT, deliveryDate=20240116)), "bad_field", "deliveryDate"),
    ("DST string", encode(with_(RT, DSTFlag="N")), "bad_field", "DSTFlag: expected true"),
    ("DST int", encode(with_(RT, DSTFlag=0)), "bad_field", "DSTFlag"),
    ("DST absent", encode(with_(RT, DSTFlag=_DROP)), "missing_field", "DSTFlag"),
    (
        "spring gap",
        encode(with_(RT, deliveryDate="2024-03-10", deliveryHour=3)),
        "bad_field",
        "does not exist",
    ),
    ("DST outside fall-back", encode(with_(RT, DSTFlag=True)), "bad_field", "not in the repeated"),
    ("empty point", encode(with_(RT, settlementPoint="")), "bad_field", "settlementPoint"),
    ("point number", encode(with_(RT, settlementPoint=7)), "bad_field", "settlementPoint"),
    ("type number", encode(with_(RT, settlementPointType=1)), "bad_field", "settlementPointType"),
    ("future 905", encode(with_(RT, deliveryHour=21)), "future", "ahead of now"),
    ("future 788", encode(with_(SCED, SCEDTimestamp="2024-01-16T20:00:01")), "future", "ahead"),
    (
        "SCED with offset",
        encode(with_(SCED, SCEDTimestamp="2024-01-16T18:20:12-06:00")),
        "bad_field",
        "naive Central",
    ),
    ("SCED garbage", encode(with_(SCED, SCEDTimestamp="yesterday")), "bad_field", "SCEDTimestamp"),
    ("SCED number", encode(with_(SCED, SCEDTimestamp=1705450812)), "bad_field", "SCEDTimestamp"),
    (
        "SCED spring gap",
        encode(with_(SCED, SCEDTimestamp="2024-03-10T02:30:00")),
        "bad_field",
        "does not exist",
    ),
    ("repeat flag absent", encode(with_(SCED, repeatHourFlag=_DROP)), "missing_field", "repeat"),
    ("repeat flag outside", encode(with_(SCED, repeatHourFlag=True)), "bad_field", "repeated"),
    ("fields not array", b'{"fields": {}, "data": []}', "unknown_shape", "'fields' array"),
    ("data absent", b'{"fields": []}', "unknown_shape", "'data' array"),
    ("field without name", b'{"fields": [{}], "data": []}', "unknown_shape", "fields[0]"),
    (
        "field name twice",
        b'{"fields": [{"name": "LMP"}, {"name": "LMP"}], "data": []}',
        "unknown_shape",
        "duplicate field name",
    ),
    (
        "row too short",
        b'{"fields": [{"name": "LMP"}, {"name": "x"}], "data": [[1]]}',
        "unknown_shape",
        "data[0]: expected an array of 2 values",
    ),
    ("row not array", b'{"fields": [{"name": "LMP"}], "data": [5]}', "unknown_shape", "data[0]"),
]


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_rejections(payload: bytes, reason: str, detail: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        parse_price_payload(payload, NOW)
    assert caught.value.reason == reason
    assert detail in caught.value.detail
    assert str(caught.value).startswith(f"{reason}: ")


def test_envelope_with_one_bad_row_is_rejected_whole() -> None:
    rows = [RT, with_(RT, settlementPointPrice="9000"), with_(RT, deliveryHour=20)]
    with pytest.raises(FeedRejected) as caught:
        parse_price_payload(encode(envelope(rows)), NOW)
    assert caught.value.reason == "bad_field"
    assert caught.value.detail.startswith("data[1]: settlementPointPrice")
    assert "whole message rejected" in caught.value.detail


# --- times and text a later stage could not handle (I10, CONTRACT 7) -------------------------

FAR_905 = [
    with_(RT, deliveryDate="9999-12-31", deliveryHour=24, deliveryInterval=4),  # OverflowError
    with_(RT, deliveryDate="9999-12-31", deliveryHour=1),
    with_(RT, deliveryDate="0001-01-01", deliveryHour=1),
    with_(RT, deliveryDate="1999-12-31", deliveryHour=18, deliveryInterval=4),  # 23:45Z
    with_(RT, deliveryDate="2099-12-31", deliveryHour=19, deliveryInterval=1),  # 2100 at 00:00Z
]
FAR_788 = [
    with_(SCED, SCEDTimestamp="9999-12-31T23:59:59"),  # OverflowError
    with_(SCED, SCEDTimestamp="0001-01-01T00:00:00"),
    with_(SCED, SCEDTimestamp="1999-12-31T17:59:59"),
]


@pytest.mark.parametrize(
    "record", [*FAR_905, *FAR_788], ids=[*(f"905-{i}" for i in range(5)), "788-0", "788-1", "788-2"]
)
@pytest.mark.parametrize("form", ["record", "envelope"])
def test_record_times_outside_the_window_are_out_of_range(
    record: dict[str, Any], form: str
) -> None:
    payload = encode(record if form == "record" else envelope([record]))
    with pytest.raises(FeedRejected) as caught:  # `future` says nothing of year 9999
        parse_price_payload(payload, datetime(2099, 12, 31, 23, tzinfo=UTC).timestamp())
    assert caught.value.reason == "out_of_range"
    assert "is outside [2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)" in caught.value.detail


def test_the_first_and_last_intervals_of_the_window_are_accepted() -> None:
    last = with_(RT, deliveryDate="2099-12-31", deliveryHour=18, deliveryInterval=4)
    first = with_(SCED, SCEDTimestamp="1999-12-31T18:00:00")
    (late,) = parse_price_payload(encode(last), utc("2100-01-01T00:00"))
    (early,) = parse_price_payload(encode(first), NOW)
    assert (late.interval_start, early.interval_start) == (
        utc("2099-12-31T23:45"),
        utc("2000-01-01T00:00"),
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("settlementPoint", "HB_\x00WEST"),
        ("settlementPoint", "HB_\ud800"),
        ("settlementPoint", "X" * 129),
        ("settlementPointType", "HU\ud800"),
        ("settlementPointType", "HU\x1b"),
        ("settlementPointType", "H" * 129),
    ],
)
def test_text_that_cannot_be_logged_or_stored_is_rejected(field: str, value: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        parse_price_payload(encode(with_(RT, **{field: value})), NOW)
    assert (caught.value.reason, caught.value.detail.split(":")[0]) == ("bad_field", field)


def test_a_detail_quotes_a_bounded_part_of_any_payload() -> None:
    many_keys = {f"k{i:05d}" + "x" * 100: i for i in range(5000)}
    long_name = "n" * 10**5
    for payload in (
        encode(many_keys),
        encode({"fields": [{"name": long_name}, {"name": long_name}], "data": []}),
        b'{"' + long_name.encode() + b'": 1, "' + long_name.encode() + b'": 2}',
    ):
        with pytest.raises(FeedRejected) as caught:
            parse_price_payload(payload, NOW)
        assert len(caught.value.detail) < 1024


def test_long_date_text_is_not_echoed_whole() -> None:
    for record in (with_(RT, deliveryDate="2" * 10**5), with_(SCED, SCEDTimestamp="2" * 10**5)):
        with pytest.raises(FeedRejected) as caught:
            parse_price_payload(encode(record), NOW)
        assert caught.value.reason == "bad_field"
        assert len(caught.value.detail) < 200


# --- PriceBook ------------------------------------------------------------------------------


def rt(start: float, price: float, point: str = "HB_WEST") -> PriceRecord:
    return PriceRecord("rt_spp", point, start, price)


def sced(start: float, price: float) -> PriceRecord:
    return PriceRecord("sced_lmp", "HB_WEST", start, price)


def test_book_latest_time_acts_same_time_replaces_older_does_not() -> None:
    book = PriceBook("HB_WEST")
    assert book.acting is None
    assert book.offer(rt(900.0, 30.0), received_at=1000.0)
    assert book.acting == ActingPrice(30.0, 900.0, 1000.0, "rt_spp")
    assert book.offer(sced(1200.0, 40.0), received_at=1300.0)  # later SCED wins
    assert book.acting == ActingPrice(40.0, 1200.0, 1300.0, "sced_lmp")
    assert not book.offer(rt(900.0, 35.0), received_at=1400.0)  # older: recorded only
    assert book.acting == ActingPrice(40.0, 1200.0, 1300.0, "sced_lmp")
    assert book.offer(sced(1200.0, 41.0), received_at=1500.0)  # same time: correction
    assert book.acting == ActingPrice(41.0, 1200.0, 1500.0, "sced_lmp")
    # A 905 record whose interval starts at the SCED stamp has the same time, so it replaces.
    assert book.offer(rt(1200.0, 39.0), received_at=1600.0)
    assert book.acting == ActingPrice(39.0, 1200.0, 1600.0, "rt_spp")
    assert book.latest_by_product() == {"rt_spp": rt(1200.0, 39.0), "sced_lmp": sced(1200.0, 41.0)}
    assert book.history("rt_spp") == (rt(900.0, 30.0), rt(900.0, 35.0), rt(1200.0, 39.0))
    assert book.history("dam_spp") == ()


def test_book_same_value_refresh_counts_as_a_change() -> None:
    book = PriceBook("HB_WEST")
    book.offer(rt(900.0, 30.0), received_at=1000.0)
    assert book.offer(rt(900.0, 30.0), received_at=2000.0)
    acting = book.acting
    assert acting is not None
    assert acting.received_at == 2000.0


def test_book_ignores_other_settlement_points() -> None:
    book = PriceBook("HB_WEST")
    north = rt(900.0, 5000.0, point="HB_NORTH")
    assert not book.accepts(north)
    assert not book.offer(north, received_at=1000.0)
    assert book.acting is None
    assert book.ignored_other_points == 1
    assert book.latest_by_product() == {}
    assert book.history("rt_spp") == ()


def test_book_latest_by_product_is_by_record_time_not_arrival() -> None:
    book = PriceBook("HB_WEST")
    book.offer(rt(1800.0, 2.0), received_at=1.0)
    book.offer(rt(900.0, 1.0), received_at=2.0)
    assert book.latest_by_product() == {"rt_spp": rt(1800.0, 2.0)}


def test_book_history_is_bounded() -> None:
    book = PriceBook("HB_WEST", history_len=3)
    for i in range(10):
        book.offer(rt(900.0 * i, float(i)), received_at=float(i))
    assert [r.price_usd_per_mwh for r in book.history("rt_spp")] == [7.0, 8.0, 9.0]
    with pytest.raises(ValueError, match="history_len"):
        PriceBook("HB_WEST", history_len=0)


# --- hashprice ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"usd_per_ph_day": 48.2}', 48.2),
        (b'{"usd_per_ph_day": 50, "source": "luxor"}', 50.0),
        (b"48.2", 48.2),
        (b" 7 ", 7.0),
        (b"100000", 100_000.0),
        (b"5e-324", 5e-324),
    ],
)
def test_hashprice_accepted(payload: bytes, expected: float) -> None:
    assert parse_hashprice(payload) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"0", "out_of_range"),
        (b"-1.5", "out_of_range"),
        (b'{"usd_per_ph_day": 0}', "out_of_range"),
        (b"1e400", "out_of_range"),
        (b"1e308", "out_of_range"),  # breakeven = hashprice x 1000 / ...: inf
        (b"100000.01", "out_of_range"),
        (
            b'{"usd_per_ph_day": 1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111}',
            "out_of_range",
        ),
        (b"NaN", "malformed_json"),
        (b"Infinity", "malformed_json"),
        (b'"48.2"', "unknown_shape"),
        (b"true", "unknown_shape"),
        (b"[48.2]", "unknown_shape"),
        (b"null", "unknown_shape"),
        (b'{"usd_per_ph_day": "48.2"}', "bad_field"),
        (b'{"usd_per_ph_day": true}', "bad_field"),
        (b'{"usd_per_ph_day": null}', "missing_field"),
        (b'{"usd_per_th_day": 0.05}', "missing_field"),
        (b"", "malformed_json"),
    ],
)
def test_hashprice_rejected(payload: bytes, reason: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        parse_hashprice(payload)
    assert caught.value.reason == reason


@settings(max_examples=max(20, settings().max_examples // 5))
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["rt_spp", "sced_lmp"]),
            st.sampled_from(["HB_WEST", "HB_NORTH"]),
            st.integers(min_value=0, max_value=5).map(lambda i: 900.0 * i),
            st.floats(min_value=-100, max_value=100),
        ),
        max_size=12,
    )
)
def test_property_book_acts_on_the_latest_time_last_arrival(
    offers: list[tuple[PriceProduct, str, float, float]],
) -> None:
    book = PriceBook("HB_WEST")
    for received_at, (product, point, start, price) in enumerate(offers):
        book.offer(PriceRecord(product, point, start, price), float(received_at))
    mine = [(start, i) for i, (_, point, start, _) in enumerate(offers) if point == "HB_WEST"]
    assert book.ignored_other_points == len(offers) - len(mine)
    if not mine:
        assert book.acting is None
        return
    _, winner = max(mine)  # latest time; among equal times, the last to arrive
    product, _, start, price = offers[winner]
    assert book.acting == ActingPrice(price, start, float(winner), product)
