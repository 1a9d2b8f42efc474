"""Adversarial inbound payloads for every feed, built from JSON values that strain a parser.

Each strategy gives a `Case`: the bytes as they would arrive on MQTT and a receive time that
gives the payload a fair chance of acceptance (an override's issued_at near `now`, a price
record not in the future). Values are mostly well formed, with a share of extremes: numbers at
and past every bound (2**53, 2**63, 10**400, 1e308, subnormals, Infinity literals), instants at
the edges of the feeds' window and of datetime itself (years 1 and 9999 with offsets that push
them over), and strings that cannot be logged or stored (NUL, lone surrogates, terminal escapes,
invisible characters, 10,000 characters). The window [2000, 2100) UTC is written out here, not
imported, so the property checks the bound the contract promises rather than echoing the code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from controller.model import DispatchType

WINDOW_MIN_S = datetime(2000, 1, 1, tzinfo=UTC).timestamp()
WINDOW_MAX_S = datetime(2100, 1, 1, tzinfo=UTC).timestamp()
DAY_S = 86_400.0
SETTLEMENT_POINT = "HB_WEST"

EXTREME_NUMBERS: tuple[Any, ...] = (
    0,
    -0.0,
    5e-324,
    0.1,
    2**31,
    2**53,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**70,
    10**30,
    10**400,  # valid JSON; no float holds it
    -(10**400),
    1e308,
    -1e308,
    1.7976931348623157e308,
    float("inf"),  # sent as the non-JSON literal Infinity
    float("nan"),
    True,
    None,
    "12.5",
    [1],
)
ODD_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "VDI\x00-1",
    "\ud800",
    "a\udfff",
    "\x1b[2J",
    "\u200b",
    "a\u2028b",
    "\n",
    "tab\there",
    "Jörg 😀",
    "x" * 128,
    "x" * 129,
    "x" * 256,
    "x" * 10_000,
)
FAR_INSTANTS: tuple[Any, ...] = (
    "0001-01-01T00:00:00+01:00",  # before datetime.min once in UTC
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-23:59",  # after datetime.max once in UTC
    "9999-12-31T23:59:59.999999+00:00",
    "1970-01-01T00:00:00Z",
    "1999-12-31T23:59:59.999Z",
    "2100-01-01T00:00:00Z",
    "2099-12-31T19:00:00-05:00",
    "2024-01-16T18:02:00",  # naive
    "2024-01-16",
    "now",
    1_705_449_720,
)

_ID_CHARS = st.characters(categories=["L", "M", "N", "P", "S"], include_characters=" ")


@dataclass(frozen=True)
class Case:
    payload: bytes
    now: float  # when it is received: in the window, as a real clock would be
    lax: bool = False  # override: validate under max_ttl_s = 10**12 (the operator's choice)


def encode(obj: Any) -> bytes:
    """As a sender would: ASCII JSON, so lone surrogates travel as \\ud800 escapes."""
    return json.dumps(obj).encode()


def hostile(draw: st.DrawFn, ok: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
    """Mostly `ok` (valid values, edges included), one time in eight `bad`: with a handful of
    fields per message, about half the messages are clean and the rest fail on one or two."""
    return draw(bad if draw(st.integers(0, 7)) == 0 else ok)


def numbers(draw: st.DrawFn, low: float, high: float) -> Any:
    """A number in [low, high] (float or int, the bounds, the smallest subnormal), or extreme."""
    edges = st.sampled_from((low, high, 5e-324 if low <= 0 < high else low, int(high)))
    ok = st.one_of(st.floats(low, high), st.integers(int(low), int(high)), edges)
    return hostile(draw, ok, st.sampled_from(EXTREME_NUMBERS))


def ids(draw: st.DrawFn) -> Any:
    ok = st.one_of(st.text(_ID_CHARS, min_size=1, max_size=24), st.just("x" * 128))
    return hostile(draw, ok, st.sampled_from((*ODD_STRINGS, *EXTREME_NUMBERS)))


def texts(draw: st.DrawFn) -> Any:
    typed = st.text(st.characters(exclude_categories=["Cc", "Cs"], include_characters="\n\t"))
    ok = st.one_of(typed, st.just("r" * 1024), st.none())
    return hostile(draw, ok, st.sampled_from(ODD_STRINGS))


def iso_at(epoch_s: float, offset_min: int, z: bool = False) -> str:
    text = datetime.fromtimestamp(epoch_s, timezone(timedelta(minutes=offset_min))).isoformat()
    return text.replace("+00:00", "Z") if z else text


def instants(draw: st.DrawFn, near: float | None = None) -> tuple[Any, float | None]:
    """(value as sent, its epoch): in the window, edges included, or (one in eight) far out."""
    if draw(st.integers(0, 7)) == 0:
        outside = st.sampled_from((WINDOW_MIN_S - 0.001, WINDOW_MAX_S, WINDOW_MAX_S + DAY_S))
        far = draw(st.one_of(st.sampled_from(FAR_INSTANTS), outside))
        if isinstance(far, str | int):
            return far, None
        epoch_s = far
    elif near is not None:
        epoch_s = near + draw(st.floats(-3600.0, 40 * DAY_S))
    else:
        edges = st.sampled_from((WINDOW_MIN_S, WINDOW_MAX_S - 0.001, WINDOW_MAX_S - DAY_S))
        epoch_s = draw(st.one_of(st.floats(WINDOW_MIN_S, WINDOW_MAX_S - 0.001), edges))
    offset_min = draw(st.one_of(st.sampled_from((0, -360, -300)), st.integers(-1439, 1439)))
    return iso_at(epoch_s, offset_min, z=offset_min == 0 and draw(st.booleans())), epoch_s


def _receive_time(draw: st.DrawFn, hint: float | None, low_s: float, high_s: float) -> float:
    """`hint` + a drawn delay when the payload carries a usable time, else any time; in window."""
    if hint is None or not WINDOW_MIN_S <= hint < WINDOW_MAX_S:
        return draw(st.floats(WINDOW_MIN_S, WINDOW_MAX_S - 1.0))
    return min(max(hint + draw(st.floats(low_s, high_s)), WINDOW_MIN_S), WINDOW_MAX_S - 1.0)


# --- dispatch -------------------------------------------------------------------------------

KINDS = tuple(t.value for t in DispatchType)
_NEEDS = {
    "mw": {"RRS", "ECRS", "NSRS", "ERS10", "ERS30", "CLR", "LIMIT", "AWARD"},
    "level": {"EEA"},
    "start": {"4CP", "AWARD"},
    "end": {"4CP", "AWARD"},
    "recall_id": {"RECALL"},
    "product": {"AWARD"},
}


@st.composite
def dispatch_cases(draw: st.DrawFn) -> Case:
    kind = hostile(draw, st.sampled_from(KINDS), st.sampled_from(("REGUP", "rrs", "", 4)))
    notified, hint = instants(draw)
    obj: dict[str, Any] = {"id": ids(draw), "type": kind, "notified_at": notified}
    start, start_hint = instants(draw, near=hint)
    optional: dict[str, Callable[[], Any]] = {
        "mw": lambda: numbers(draw, 0.0, 10_000.0),
        "level": lambda: hostile(
            draw, st.integers(0, 3), st.one_of(st.just(4), st.sampled_from(EXTREME_NUMBERS))
        ),
        "start": lambda: start,
        "end": lambda: instants(draw, near=start_hint)[0],
        "deadline_s": lambda: numbers(draw, 0.0, DAY_S),
        "recall_id": lambda: ids(draw),
        "product": lambda: hostile(
            draw, st.sampled_from(("RRS", "ECRS", "NSRS")), st.sampled_from(("REGUP", "", 1))
        ),
        "gateway": lambda: texts(draw),  # a gateway's own field: ignored
    }
    for key, value in optional.items():
        # The fields a type needs are nearly always there; the others sometimes (ignored).
        if draw(st.integers(0, 15)) < (15 if kind in _NEEDS.get(key, ()) else 5):
            obj[key] = value()
    return Case(encode(obj), _receive_time(draw, hint, -60.0, 7200.0))


# --- override -------------------------------------------------------------------------------


@st.composite
def override_cases(draw: st.DrawFn) -> Case:
    mode = hostile(draw, st.sampled_from(("curtail", "limit", "run", "auto")), st.just("off"))
    issued, hint = instants(draw)
    obj: dict[str, Any] = {
        "mode": mode,
        "issued_at": issued,
        "nonce": hostile(draw, st.just("n" * 256), st.just("n" * 257))
        if draw(st.booleans())
        else ids(draw),
        "ttl_s": hostile(draw, st.integers(1, 86_400), st.sampled_from(EXTREME_NUMBERS)),
        "limit_kw": numbers(draw, 0.0, 10_000_000.0),
        "operator": hostile(draw, st.just(""), st.just(None)) if draw(st.booleans()) else ids(draw),
        "reason": texts(draw),
    }
    now = _receive_time(draw, hint, -130.0, 130.0)
    return Case(encode(obj), now, lax=draw(st.booleans()))


# --- prices ---------------------------------------------------------------------------------

_DATES = st.dates(date(1999, 12, 25), date(2100, 1, 5)).map(date.isoformat)
_FAR_DATES = st.one_of(
    st.dates().map(date.isoformat),  # years 1 .. 9999
    st.sampled_from(("9999-12-31", "0001-01-01", "2024-02-30", "01/16/2024", "")),
)
_SCED_TIMES = st.datetimes(datetime(1999, 12, 25), datetime(2100, 1, 5)).map(  # noqa: DTZ001
    lambda moment: moment.isoformat(timespec="seconds")  # naive Central, as ERCOT sends it
)
_FAR_SCED_TIMES = st.sampled_from(
    ("9999-12-31T23:59:59", "0001-01-01T00:00:00", "2024-01-16T18:20:12-06:00", "soon")
)


def _points(draw: st.DrawFn) -> Any:
    return SETTLEMENT_POINT if draw(st.booleans()) else ids(draw)


def _record_905(draw: st.DrawFn, day: str) -> dict[str, Any]:
    return {
        "deliveryDate": day,
        "deliveryHour": hostile(draw, st.integers(1, 24), st.sampled_from(EXTREME_NUMBERS)),
        "deliveryInterval": hostile(draw, st.integers(1, 4), st.sampled_from((0, 5, 2**70))),
        "settlementPoint": _points(draw),
        "settlementPointType": hostile(draw, st.sampled_from(("HU", "LZ", "")), st.just(7)),
        "settlementPointPrice": numbers(draw, -10_000.0, 100_000.0),
        # the flag only fits the repeated fall-back hour: mostly false
        "DSTFlag": hostile(draw, st.just(False), st.sampled_from((True, 0, "N"))),
    }


def _record_788(draw: st.DrawFn, stamp: str) -> dict[str, Any]:
    return {
        "SCEDTimestamp": stamp,
        "repeatHourFlag": hostile(draw, st.just(False), st.sampled_from((True, None))),
        "settlementPoint": _points(draw),
        "LMP": numbers(draw, -10_000.0, 100_000.0),
    }


def _time_hint(text: str) -> float | None:
    """UTC midnight of the text's date, when it has one (for a receive time after it)."""
    try:
        day = date.fromisoformat(text[:10])
    except ValueError:
        return None
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@st.composite
def price_cases(draw: st.DrawFn) -> Case:
    product = draw(st.sampled_from(("905", "788")))
    if product == "905":
        when = hostile(draw, _DATES, _FAR_DATES)
    else:
        when = hostile(draw, _SCED_TIMES, _FAR_SCED_TIMES)
    count = draw(st.integers(1, 3))
    make = _record_905 if product == "905" else _record_788
    records = [make(draw, when) for _ in range(count)]
    if count == 1 and draw(st.booleans()):
        obj: Any = records[0]
    else:  # the public API envelope of the report
        names = list(records[0])
        obj = {
            "_meta": {"totalRecords": count},
            "fields": [{"name": name} for name in names],
            "data": [[record[name] for name in names] for record in records],
        }
    # A record is at most an hour ahead of now: receive it from a day after its date on.
    return Case(encode(obj), _receive_time(draw, _time_hint(when), DAY_S + 7 * 3600, 4 * DAY_S))


@st.composite
def hashprice_cases(draw: st.DrawFn) -> Case:
    value = numbers(draw, 0.0, 100_000.0)
    doc = {"usd_per_ph_day": value} if draw(st.booleans()) else value
    return Case(encode(doc), draw(st.floats(WINDOW_MIN_S, WINDOW_MAX_S - 1.0)))


# --- pool state -----------------------------------------------------------------------------


@st.composite
def pool_state_cases(draw: st.DrawFn, max_kw: float) -> Case:
    seq_edges = st.sampled_from((0, 2**53))
    obj: dict[str, Any] = {
        "seq": hostile(
            draw,
            st.one_of(st.integers(0, 2**53), seq_edges),
            st.sampled_from((2**53 + 1, 2**63, 2**70, 10**400, -1, 1.0, True)),
        ),
        "power_kw": numbers(draw, 0.0, 10 * max_kw),
        "available_kw": numbers(draw, 0.0, 10 * max_kw),
    }
    if draw(st.booleans()):
        obj["online"] = hostile(draw, st.booleans(), st.sampled_from((1, "true")))
    at, hint = instants(draw)
    if draw(st.booleans()):
        obj["at"] = at
    return Case(encode(obj), _receive_time(draw, hint, -5.0, 5.0))
