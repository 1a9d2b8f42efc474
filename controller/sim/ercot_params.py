"""Query parameters of the fake ERCOT report endpoints, as the published spec lists them.

Range filters come in `...From` / `...To` pairs, both inclusive; dates are `yyyy-MM-dd`,
SCED timestamps `yyyy-MM-ddTHH:mm:ss` (naive Central time, compared as such), booleans
`true | false`. `page` is 1-based; `sort` names a field and `dir` is `asc` or `desc`. A
parameter the spec does not list, or a value in the wrong format, is a 400, so a client that
sends a wrong name fails loudly here instead of silently getting every record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from controller.sim.ercot_records import FIELDS, FakeRecord, Product

DEFAULT_PAGE_SIZE = 10_000
MAX_PAGE_SIZE = 1_000_000


class ParamError(ValueError):
    """A 400: the message names the parameter and what it expects."""


def _date(text: str) -> date:
    return date.fromisoformat(text)


def _timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")  # noqa: DTZ007 (naive Central, as sent)


def _bool(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError("expected true or false")
    return text == "true"


# field -> (parser of the query value, how the row's value compares); ranges get From/To.
_RANGES: dict[Product, dict[str, Callable[[str], Any]]] = {
    "np6-905-cd": {
        "deliveryDate": _date,
        "deliveryHour": int,
        "deliveryInterval": int,
        "settlementPointPrice": float,
    },
    "np6-788-cd": {"SCEDTimestamp": _timestamp, "LMP": float},
}
_EQUALS: dict[Product, dict[str, Callable[[str], Any]]] = {
    "np6-905-cd": {"settlementPoint": str, "settlementPointType": str, "DSTFlag": _bool},
    "np6-788-cd": {"settlementPoint": str, "repeatHourFlag": _bool},
}
_ROW_VALUE: dict[str, Callable[[Any], Any]] = {
    "deliveryDate": _date,
    "SCEDTimestamp": _timestamp,
}


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ParamError(f"{name}: expected a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise ParamError(f"{name}: {value} is outside {low}..{high}")
    return value


def query_rows(
    product: Product, records: list[FakeRecord], query: dict[str, str]
) -> tuple[list[dict[str, Any]], int, int, str]:
    """The filtered, sorted rows of every page, the page, the page size and the sort key."""
    ranges, equals = _RANGES[product], _EQUALS[product]
    known = {"page", "size", "sort", "dir"} | set(equals)
    known |= {f"{name}{end}" for name in ranges for end in ("From", "To")}
    unknown = sorted(set(query) - known)
    if unknown:
        raise ParamError(f"unknown parameter(s) {', '.join(unknown)}; this report takes "
                         f"{', '.join(sorted(known))}")  # fmt: skip
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for name, text in query.items():
        field, parse, bound = name, None, ""
        if name in equals:
            parse = equals[name]
        elif name.endswith(("From", "To")) and (base := name.removesuffix("From").removesuffix(
            "To")) in ranges:  # fmt: skip
            field, parse, bound = base, ranges[base], name[len(base) :]
        if parse is None:
            continue
        try:
            value = parse(text)
        except ValueError as exc:
            raise ParamError(f"{name}: invalid value {text!r} ({exc})") from None
        tests.append(_test(field, value, bound))
    rows = [row for row in (r.row() for r in records) if all(test(row) for test in tests)]
    sort = query.get("sort", "")
    direction = query.get("dir", "asc")
    if direction not in ("asc", "desc"):
        raise ParamError(f"dir: expected asc or desc, got {direction!r}")
    if sort:
        if sort not in {name for name, _ in FIELDS[product]}:
            raise ParamError(f"sort: {sort!r} is not a field of this report")
        key = _ROW_VALUE.get(sort, lambda v: v)
        rows.sort(key=lambda row: key(row[sort]), reverse=direction == "desc")
    page = _int_param(query, "page", 1, 1, 1_000_000)
    size = _int_param(query, "size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    return rows, page, size, f"{sort}:{direction}" if sort else ""


def _test(field: str, value: Any, bound: str) -> Callable[[dict[str, Any]], bool]:
    convert = _ROW_VALUE.get(field, lambda v: v)
    if bound == "From":
        return lambda row: bool(convert(row[field]) >= value)
    if bound == "To":
        return lambda row: bool(convert(row[field]) <= value)
    return lambda row: bool(row[field] == value)
