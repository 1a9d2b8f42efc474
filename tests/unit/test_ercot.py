"""ERCOT time conventions and the NP6-905-CD / NP4-190-CD CSV readers."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from controller.errors import CurtaildError
from controller.feeds.ercot import (
    CENTRAL,
    PriceFileError,
    central_to_epoch,
    interval_start_epoch,
    iter_905_rows,
    read_price_csv,
    record_905_start_epoch,
)

HEADER_905 = (
    "DeliveryDate,DeliveryHour,DeliveryInterval,SettlementPointName,SettlementPointType,"
    "SettlementPointPrice,DSTFlag"
)
HEADER_190 = "DeliveryDate,HourEnding,SettlementPoint,SettlementPointPrice,DSTFlag"
DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared/data/ercot"
RT_FILE = DATA_DIR / "np6-905-cd_rt_spp_hubs_jan2022-2025.csv"
DAM_2021_FILE = DATA_DIR / "np4-190-cd_dam_spp_2021.csv"
needs_rt_file = pytest.mark.skipif(
    not RT_FILE.exists(),
    reason="../shared/data/ercot not present (real ERCOT data lives outside the project)",
)
needs_dam_file = pytest.mark.skipif(
    not DAM_2021_FILE.exists(),
    reason="../shared/data/ercot not present (real ERCOT data lives outside the project)",
)


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def write(tmp_path: Path, *lines: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


# --- interval_start_epoch -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "hour", "interval", "dst", "expected_utc"),
    [
        (date(2024, 1, 16), 19, 2, False, "2024-01-17T00:15"),  # 18:15 CST
        (date(2024, 1, 16), 1, 1, False, "2024-01-16T06:00"),
        (date(2024, 1, 16), 24, 4, False, "2024-01-17T05:45"),  # 23:45 CST
        (date(2024, 7, 1), 1, 1, False, "2024-07-01T05:00"),  # CDT
        # Fall-back 2024-11-03: hour ending 02 happens twice, DSTFlag marks the second pass.
        (date(2024, 11, 3), 1, 1, False, "2024-11-03T05:00"),
        (date(2024, 11, 3), 2, 1, False, "2024-11-03T06:00"),
        (date(2024, 11, 3), 2, 4, False, "2024-11-03T06:45"),
        (date(2024, 11, 3), 2, 1, True, "2024-11-03T07:00"),
        (date(2024, 11, 3), 2, 4, True, "2024-11-03T07:45"),
        (date(2024, 11, 3), 3, 1, False, "2024-11-03T08:00"),
        # Spring-forward 2024-03-10: hour ending 03 does not exist.
        (date(2024, 3, 10), 2, 4, False, "2024-03-10T07:45"),
        (date(2024, 3, 10), 4, 1, False, "2024-03-10T08:00"),
    ],
)
def test_interval_start(day: date, hour: int, interval: int, dst: bool, expected_utc: str) -> None:
    assert interval_start_epoch(day, hour, interval, dst) == utc(expected_utc)


@pytest.mark.parametrize(
    ("day", "hour", "interval", "dst", "message"),
    [
        (date(2024, 3, 10), 3, 1, False, "does not exist"),
        (date(2024, 3, 10), 3, 4, False, "does not exist"),
        (date(2024, 3, 10), 3, 1, True, "does not exist"),
        (date(2024, 11, 3), 1, 1, True, "not in the repeated fall-back hour"),
        (date(2024, 11, 3), 3, 1, True, "not in the repeated fall-back hour"),
        (date(2024, 1, 16), 19, 2, True, "not in the repeated fall-back hour"),
        (date(2024, 1, 16), 0, 1, False, "outside 1-24"),
        (date(2024, 1, 16), 25, 1, False, "outside 1-24"),
        (date(2024, 1, 16), 1, 0, False, "outside 1-4"),
        (date(2024, 1, 16), 1, 5, False, "outside 1-4"),
        # once an OverflowError out of every reader (backtest, demo, the price feed)
        (date(9999, 12, 31), 24, 4, False, "9999-12-31 23:45 is beyond the range of datetime"),
        (date(9999, 12, 31), 19, 1, False, "beyond the range of datetime"),
    ],
)
def test_interval_start_rejects(
    day: date, hour: int, interval: int, dst: bool, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        interval_start_epoch(day, hour, interval, dst)


def test_every_interval_of_a_year_follows_the_last_by_15_minutes() -> None:
    """Walking ERCOT's stamps in publication order covers 2024 without a gap or an overlap."""
    starts: list[float] = []
    intervals_per_day: dict[date, int] = {}
    day = date(2024, 1, 1)
    while day.year == 2024:
        count = 0
        for hour in range(1, 25):
            for dst in (False, True):  # the flagged repeat follows the first pass of the hour
                for interval in range(1, 5):
                    try:
                        starts.append(interval_start_epoch(day, hour, interval, dst))
                    except ValueError:
                        continue
                    count += 1
        intervals_per_day[day] = count
        day += timedelta(days=1)
    steps = {later - earlier for earlier, later in itertools.pairwise(starts)}
    assert steps == {900.0}
    assert intervals_per_day[date(2024, 3, 10)] == 92
    assert intervals_per_day[date(2024, 11, 3)] == 100
    assert sum(intervals_per_day.values()) == 366 * 96


def test_central_to_epoch_second_occurrence() -> None:
    local = datetime(2024, 11, 3, 1, 20, 12)  # noqa: DTZ001 - naive Central on purpose
    first = central_to_epoch(local, second_occurrence=False)
    second = central_to_epoch(local, second_occurrence=True)
    assert second - first == 3600
    assert datetime.fromtimestamp(second, CENTRAL).utcoffset() == timedelta(hours=-6)


# --- read_price_csv: synthetic files --------------------------------------------------------


def test_read_905_sorts_filters_and_ignores_other_points(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER_905,
        "01/16/2024,19,2,HB_WEST,HU,1174.66,N",
        "01/16/2024,19,1,HB_WEST,HU,900.5,N",
        "01/16/2024,19,1,HB_NORTH,HU,800,N",
        "01/17/2024,1,1,HB_WEST,HU,-31.9,N",
        "01/15/2024,24,4,HB_WEST,HU,20,N",
        "",
    )
    records = read_price_csv(path, "HB_WEST")
    assert [r.price_usd_per_mwh for r in records] == [20.0, 900.5, 1174.66, -31.9]
    assert {r.product for r in records} == {"rt_spp"}
    assert {r.settlement_point for r in records} == {"HB_WEST"}
    assert records[2].interval_start == utc("2024-01-17T00:15")
    sliced = read_price_csv(path, "HB_WEST", start=date(2024, 1, 16), end=date(2024, 1, 16))
    assert [r.price_usd_per_mwh for r in sliced] == [900.5, 1174.66]
    assert len(read_price_csv(path, "HB_WEST", start=date(2024, 1, 17))) == 1
    assert len(read_price_csv(path, "HB_WEST", end=date(2024, 1, 15))) == 1


def test_read_905_fall_back_day_orders_the_repeated_hour(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER_905,
        "11/03/2024,2,1,HB_WEST,HU,22,Y",
        "11/03/2024,3,1,HB_WEST,HU,30,N",
        "11/03/2024,2,1,HB_WEST,HU,21,N",
        "11/03/2024,1,4,HB_WEST,HU,10,N",
    )
    records = read_price_csv(path, "HB_WEST")
    assert [r.price_usd_per_mwh for r in records] == [10.0, 21.0, 22.0, 30.0]
    assert [r.interval_start for r in records] == [
        utc("2024-11-03T05:45"),
        utc("2024-11-03T06:00"),
        utc("2024-11-03T07:00"),
        utc("2024-11-03T08:00"),
    ]


def test_read_190_day_ahead(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER_190,
        "02/17/2021,01:00,HB_WEST,9000.01,N",
        "02/17/2021,24:00,HB_WEST,150,N",
        "11/07/2021,02:00,HB_WEST,6.59,N",
        "11/07/2021,02:00,HB_WEST,23.20,Y",
        "11/07/2021,02:00,LZ_WEST,1,Y",
    )
    records = read_price_csv(path, "HB_WEST")
    assert {r.product for r in records} == {"dam_spp"}
    assert [(r.interval_start, r.price_usd_per_mwh) for r in records] == [
        (utc("2021-02-17T06:00"), 9000.01),
        (utc("2021-02-18T05:00"), 150.0),
        (utc("2021-11-07T06:00"), 6.59),
        (utc("2021-11-07T07:00"), 23.2),
    ]


def test_read_accepts_bom_column_order_and_lf(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text(
        "\ufeffDSTFlag,SettlementPointPrice,SettlementPoint,HourEnding,DeliveryDate\n"
        "N,12.5,HB_WEST,05:00,01/02/2022\n",
        encoding="utf-8",
    )
    (record,) = read_price_csv(path, "HB_WEST")
    assert record.price_usd_per_mwh == 12.5
    assert record.interval_start == utc("2022-01-02T10:00")


ROW_ERRORS_905 = [
    ("1/16/2024,19,2,HB_WEST,HU,1,N", "DeliveryDate '1/16/2024' is not MM/DD/YYYY"),
    ("02/30/2024,19,2,HB_WEST,HU,1,N", "not a calendar date"),
    ("01/16/2024,x,2,HB_WEST,HU,1,N", "DeliveryHour 'x' is not a whole number"),
    ("01/16/2024,25,2,HB_WEST,HU,1,N", "hour ending 25 is outside 1-24"),
    ("01/16/2024,19,5,HB_WEST,HU,1,N", "interval 5 is outside 1-4"),
    ("01/16/2024,19,-1,HB_WEST,HU,1,N", "DeliveryInterval '-1' is not a whole number"),
    ("01/16/2024,19,2,HB_WEST,HU,abc,N", "SettlementPointPrice 'abc' is not a number"),
    ("01/16/2024,19,2,HB_WEST,HU,,N", "SettlementPointPrice '' is not a number"),
    ("01/16/2024,19,2,HB_WEST,HU,nan,N", "SettlementPointPrice 'nan' is not a number"),
    ("01/16/2024,19,2,HB_WEST,HU,inf,N", "SettlementPointPrice 'inf' is not a number"),
    ("01/16/2024,19,2,HB_WEST,HU,1_000,N", "is not a number"),
    ("01/16/2024,19,2,HB_WEST,HU,100000.01,N", "outside"),
    ("01/16/2024,19,2,HB_WEST,HU,-10001,N", "outside"),
    ("01/16/2024,19,2,HB_WEST,HU,1,X", "DSTFlag 'X' is not Y or N"),
    ("01/16/2024,19,2,HB_WEST,HU,1,Y", "not in the repeated fall-back hour"),
    ("03/10/2024,3,1,HB_WEST,HU,1,N", "does not exist in Central time"),
    ("01/16/2024,19,2,,HU,1,N", "empty settlement point"),
    ("01/16/2024,19,2,HB_WEST,HU,1", "expected 7 fields, got 6"),
    ("01/16/2024,19,2,HB_WEST,HU,1,N,extra", "expected 7 fields, got 8"),
    ("01/16/2024,19,2,HB_WEST,HU,1174.66,N", r"duplicate row for HB_WEST .* \(first at line 2\)"),
]


@pytest.mark.parametrize(("row", "message"), ROW_ERRORS_905)
def test_read_905_bad_row_names_its_line(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, HEADER_905, "01/16/2024,19,2,HB_WEST,HU,1174.66,N", row)
    with pytest.raises(PriceFileError, match=message) as caught:
        read_price_csv(path, "HB_WEST")
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3: ")


def test_bad_row_of_another_point_still_fails_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER_905, "01/16/2024,19,2,HB_WEST,HU,1,N", "01/16/2024,19,2,X,HU,?,N")
    with pytest.raises(PriceFileError, match=r":3: SettlementPointPrice '\?'"):
        read_price_csv(path, "HB_WEST")


@pytest.mark.parametrize(
    ("header", "row"),
    [
        (HEADER_905, "12/31/9999,24,4,HB_WEST,HU,1,N"),
        (HEADER_905, "12/31/9999,1,1,HB_WEST,HU,1,N"),
        (HEADER_905, "01/01/0001,1,1,HB_WEST,HU,1,N"),
        (HEADER_905, "12/31/1999,18,4,HB_WEST,HU,1,N"),  # 23:45Z, a quarter hour before 2000
        (HEADER_190, "12/31/9999,24:00,HB_WEST,1,N"),
        (HEADER_190, "01/01/2100,01:00,HB_WEST,1,N"),
    ],
)
def test_rows_outside_the_instant_window_name_their_line(
    tmp_path: Path, header: str, row: str
) -> None:
    path = write(tmp_path, header, row)
    with pytest.raises(PriceFileError, match=r"is outside \[2000-01-01T00:00:00Z, 2100") as caught:
        read_price_csv(path, "HB_WEST")
    assert caught.value.line == 2
    if header == HEADER_905:
        with pytest.raises(PriceFileError, match="is outside") as caught:
            list(iter_905_rows(path))
        assert caught.value.line == 2


def test_the_first_and_last_intervals_of_the_window_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEADER_905, "12/31/1999,19,1,HB_WEST,HU,1,N", "12/31/2099,18,4,HB_WEST,HU,2,N"
    )
    first, last = read_price_csv(path, "HB_WEST")
    assert (first.interval_start, last.interval_start) == (
        utc("2000-01-01T00:00"),
        utc("2099-12-31T23:45"),
    )


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("02/17/2021,1:00,HB_WEST,1,N", "HourEnding '1:00' is not like 01:00"),
        ("02/17/2021,01:30,HB_WEST,1,N", "HourEnding '01:30'"),
        ("02/17/2021,25:00,HB_WEST,1,N", "hour ending 25 is outside 1-24"),
        ("03/14/2021,03:00,HB_WEST,1,N", "does not exist in Central time"),
    ],
)
def test_read_190_bad_row(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, HEADER_190, row)
    with pytest.raises(PriceFileError, match=message) as caught:
        read_price_csv(path, "HB_WEST")
    assert caught.value.line == 2


@pytest.mark.parametrize(
    ("header", "rows"),
    [
        ("Date,Hour,Point,Price", ["01/16/2024,1,HB_WEST,1"]),
        ("DeliveryDate,HourEnding,SettlementPoint,SettlementPointPrice", []),  # no DSTFlag
        (HEADER_905 + ",DSTFlag", []),  # a duplicated column is ambiguous
        ("", []),
    ],
)
def test_unknown_layout_lists_expected_headers(
    tmp_path: Path, header: str, rows: list[str]
) -> None:
    path = write(tmp_path, header, *rows)
    with pytest.raises(PriceFileError, match="unknown CSV layout") as caught:
        read_price_csv(path, "HB_WEST")
    assert HEADER_905 in str(caught.value)
    assert HEADER_190 in str(caught.value)


def test_empty_file_is_an_unknown_layout(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(PriceFileError, match=r"header \(empty file\)"):
        read_price_csv(path, "HB_WEST")


def test_missing_point_lists_present_points(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEADER_905, "01/16/2024,19,2,HB_WEST,HU,1,N", "01/16/2024,19,2,HB_NORTH,HU,1,N"
    )
    with pytest.raises(PriceFileError, match="'HB_PAN' not in file; present: HB_NORTH, HB_WEST"):
        read_price_csv(path, "HB_PAN")


def test_header_only_file_has_no_points(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER_905)
    with pytest.raises(PriceFileError, match=r"present: \(none\)"):
        read_price_csv(path, "HB_WEST")


def test_empty_date_range_says_what_the_file_covers(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER_905, "01/16/2024,19,2,HB_WEST,HU,1,N")
    with pytest.raises(PriceFileError, match="file covers 2024-01-16 to 2024-01-16"):
        read_price_csv(path, "HB_WEST", start=date(2024, 2, 1))


def test_start_after_end_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER_905, "01/16/2024,19,2,HB_WEST,HU,1,N")
    with pytest.raises(PriceFileError, match="start 2024-02-01 is after end 2024-01-01"):
        read_price_csv(path, "HB_WEST", start=date(2024, 2, 1), end=date(2024, 1, 1))


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match="cannot read"):
        read_price_csv(tmp_path / "absent.csv", "HB_WEST")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(HEADER_905.encode() + b"\n\xff\xfe,1\n")
    with pytest.raises(PriceFileError, match="cannot read"):
        read_price_csv(binary, "HB_WEST")


def test_price_file_error_is_a_usage_error() -> None:
    error = PriceFileError("x.csv", "boom", 7)
    assert isinstance(error, CurtaildError)
    assert error.exit_code == 2
    assert str(error) == "x.csv:7: boom"


# --- iter_905_rows --------------------------------------------------------------------------


def test_iter_905_rows_yields_contract_records(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER_905,
        "01/16/2024,19,2,HB_WEST,HU,1174.66,N",
        "11/03/2024,2,1,HB_HUBAVG,AH,-3,Y",
    )
    rows = list(iter_905_rows(path))
    assert rows == [
        {
            "deliveryDate": "2024-01-16",
            "deliveryHour": 19,
            "deliveryInterval": 2,
            "settlementPoint": "HB_WEST",
            "settlementPointType": "HU",
            "settlementPointPrice": 1174.66,
            "DSTFlag": False,
        },
        {
            "deliveryDate": "2024-11-03",
            "deliveryHour": 2,
            "deliveryInterval": 1,
            "settlementPoint": "HB_HUBAVG",
            "settlementPointType": "AH",
            "settlementPointPrice": -3.0,
            "DSTFlag": True,
        },
    ]
    assert record_905_start_epoch(rows[0]) == utc("2024-01-17T00:15")
    assert record_905_start_epoch(rows[1]) == utc("2024-11-03T07:00")


def test_iter_905_rows_fails_when_it_reaches_a_bad_row(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEADER_905, "03/10/2024,2,1,HB_WEST,HU,1,N", "03/10/2024,3,1,HB_WEST,HU,1,N"
    )
    rows = iter_905_rows(path)
    assert next(rows)["deliveryHour"] == 2
    with pytest.raises(PriceFileError, match=":3: 2024-03-10 02:00 does not exist"):
        next(rows)


def test_iter_905_rows_refuses_a_day_ahead_file(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER_190, "02/17/2021,01:00,HB_WEST,9000.01,N")
    with pytest.raises(PriceFileError, match="expected an NP6-905-CD file, this is NP4-190-CD"):
        list(iter_905_rows(path))


# --- the real ERCOT files -------------------------------------------------------------------


@pytest.mark.realdata
@needs_rt_file
def test_real_rt_file_winter_storm_heather() -> None:
    january = read_price_csv(RT_FILE, "HB_WEST", start=date(2024, 1, 1), end=date(2024, 1, 31))
    assert len(january) == 31 * 96
    steps = {b.interval_start - a.interval_start for a, b in itertools.pairwise(january)}
    assert steps == {900.0}
    assert january[0].interval_start == utc("2024-01-01T06:00")
    peak = max(january, key=lambda record: record.price_usd_per_mwh)
    assert peak.price_usd_per_mwh == 1174.66
    # Hour ending 19, interval 2 of 2024-01-16: 18:15 CST.
    assert peak.interval_start == interval_start_epoch(date(2024, 1, 16), 19, 2, False)
    assert peak.interval_start == utc("2024-01-17T00:15")


@pytest.mark.realdata
@needs_rt_file
def test_real_rt_file_whole_hub_history() -> None:
    records = read_price_csv(RT_FILE, "HB_WEST")
    assert len(records) == 4 * 31 * 96
    prices = [record.price_usd_per_mwh for record in records]
    assert max(prices) == 2259.38
    assert min(prices) == -31.9
    peak = records[prices.index(max(prices))]
    assert peak.interval_start == interval_start_epoch(date(2025, 1, 15), 8, 3, False)


@pytest.mark.realdata
@needs_rt_file
def test_real_rt_file_streams_contract_records() -> None:
    rows = iter_905_rows(RT_FILE)
    first = next(rows)
    assert first == {
        "deliveryDate": "2022-01-01",
        "deliveryHour": 1,
        "deliveryInterval": 1,
        "settlementPoint": "HB_BUSAVG",
        "settlementPointType": "SH",
        "settlementPointPrice": 52.77,
        "DSTFlag": False,
    }
    rows.close()


@pytest.mark.realdata
@needs_dam_file
def test_real_dam_file_winter_storm_uri() -> None:
    records = read_price_csv(DAM_2021_FILE, "HB_WEST")
    assert len(records) == 8760
    assert {record.product for record in records} == {"dam_spp"}
    by_start = {record.interval_start: record.price_usd_per_mwh for record in records}
    assert by_start[interval_start_epoch(date(2021, 2, 17), 1, 1, False)] == 9000.01
    assert max(by_start.values()) == 9000.01
    # The 2021 file carries the repeated fall-back hour, flagged.
    assert by_start[utc("2021-11-07T06:00")] == 6.59
    assert by_start[utc("2021-11-07T07:00")] == 23.2
