"""The value stack's readers: hourly hub prices, AS clearing prices (both layouts), 4CP, load."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from controller.feeds.ercot import PriceFileError
from controller.value.fourcp import read_4cp_intervals, read_ercot_load
from controller.value.hours import label
from controller.value.hub_prices import read_hourly_prices
from controller.value.reserve_prices import read_reserve_prices
from tests.unit.value_support import (
    AS_LONG,
    AS_WIDE,
    HUB,
    REAL_4CP,
    REAL_AS,
    REAL_HUB,
    REAL_LOAD,
    needs_real_data,
    write_4cp,
    write_hub,
)

# -- hourly hub prices -----------------------------------------------------------------------


def test_hub_table_reads_one_point_and_market_in_time_order() -> None:
    rt = read_hourly_prices(HUB, "HB_WEST", "rt")
    dam = read_hourly_prices(HUB, "HB_WEST", "dam")
    north = read_hourly_prices(HUB, "HB_NORTH", "rt")
    # 72 rows; the fall-back day's repeated hour cannot be written without a DST flag
    assert len(rt.records) == len(dam.records) == 72
    assert rt.gaps == []
    starts = [r.interval_start for r in rt.records]
    assert starts == sorted(starts)
    spike = max(rt.records, key=lambda r: r.price_usd_per_mwh)
    assert (spike.price_usd_per_mwh, label(spike.interval_start)) == (900.0, "2024-11-04 HE18")
    assert dam.records[0].product == "dam_spp" and rt.records[0].product == "rt_spp"
    assert north.records[0].price_usd_per_mwh == pytest.approx(rt.records[0].price_usd_per_mwh - 1)
    # the repeated hour is skipped: HE02 then HE03 two real hours apart
    he2, he3 = (r.interval_start for r in rt.records[24 + 1 : 24 + 3])
    assert he3 - he2 == 7200.0


def test_hub_table_date_range_is_inclusive() -> None:
    one_day = read_hourly_prices(HUB, "HB_WEST", "rt", date(2024, 11, 4), date(2024, 11, 4))
    assert len(one_day.records) == 24
    assert label(one_day.records[0].interval_start) == "2024-11-04 HE01"


def test_unknown_point_names_the_file_and_the_points_present() -> None:
    with pytest.raises(
        PriceFileError,
        match=r"hub_hourly_2024-11-02_04\.csv:1: settlement point 'HB_EAST' not in file; present: HB_NORTH, HB_WEST",
    ):
        read_hourly_prices(HUB, "HB_EAST")


def test_a_missing_hour_is_an_error_with_the_line_unless_allowed(tmp_path: Path) -> None:
    rows = [("2024-07-01", h, "20") for h in range(1, 25) if h not in (5, 6)]
    path = write_hub(tmp_path / "gap.csv", rows)
    with pytest.raises(PriceFileError) as err:
        read_hourly_prices(path, "HB_WEST")
    assert str(err.value).startswith(
        f"{path}:5: HB_WEST: 2 hour(s) missing: 2024-07-01 HE05 .. 2024-07-01 HE06"
    )
    assert "--allow-gaps" in str(err.value)
    allowed = read_hourly_prices(path, "HB_WEST", allow_gaps=True)
    assert len(allowed.records) == 22 and allowed.missing_hours == 2


def test_an_empty_or_nan_price_is_a_missing_hour(tmp_path: Path) -> None:
    rows = [("2024-07-01", h, "nan" if h == 3 else ("" if h == 9 else "20")) for h in range(1, 25)]
    path = write_hub(tmp_path / "nan.csv", rows)
    got = read_hourly_prices(path, "HB_WEST", allow_gaps=True)
    assert [g.describe() for g in got.gaps] == [
        "1 hour(s) missing: 2024-07-01 HE03",
        "1 hour(s) missing: 2024-07-01 HE09",
    ]


def test_the_spring_forward_hour_is_accepted_only_empty(tmp_path: Path) -> None:
    rows = [("2024-03-10", h, "" if h == 3 else "20") for h in range(1, 25)]
    assert len(read_hourly_prices(write_hub(tmp_path / "a.csv", rows), "HB_WEST").records) == 23
    rows[2] = ("2024-03-10", 3, "20")
    with pytest.raises(PriceFileError, match=r"b.csv:4: .*does not exist"):
        read_hourly_prices(write_hub(tmp_path / "b.csv", rows), "HB_WEST")


def test_hours_beyond_the_file_asked_for_are_missing(tmp_path: Path) -> None:
    path = write_hub(tmp_path / "day.csv", [("2024-07-01", h, "20") for h in range(1, 25)])
    with pytest.raises(
        PriceFileError, match=r"24 hour.s. missing: 2024-07-02 HE01 .. 2024-07-02 HE24"
    ):
        read_hourly_prices(path, "HB_WEST", "rt", date(2024, 7, 1), date(2024, 7, 2))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("when,price\n2024-07-01,3\n", r":1: unknown CSV layout, header when,price"),
        ("delivery_date,hour_ending,HB_WEST_RT_hourly_mean_spp,HB_WEST_DAM_spp\n2024-07-01,25,1,1\n",
         r":2: hour_ending '25' is not 1-24"),
        ("delivery_date,hour_ending,HB_WEST_RT_hourly_mean_spp,HB_WEST_DAM_spp\n07/01/2024,1,1,1\n",
         r":2: delivery_date '07/01/2024' is not YYYY-MM-DD"),
        ("delivery_date,hour_ending,HB_WEST_RT_hourly_mean_spp,HB_WEST_DAM_spp\n2024-07-01,1,x,1\n",
         r":2: HB_WEST_RT_hourly_mean_spp 'x' is not a number"),
        ("delivery_date,hour_ending,HB_WEST_RT_hourly_mean_spp,HB_WEST_DAM_spp\n2024-07-01,1,1\n",
         r":2: expected 4 fields, got 3"),
        ("delivery_date,hour_ending,HB_WEST_RT_hourly_mean_spp,HB_WEST_DAM_spp\n2024-07-01,1,1,1\n2024-07-01,1,2,2\n", r":3: duplicate row for 2024-07-01 hour 1 .first at line 2."),
    ],
)  # fmt: skip
def test_bad_hub_files_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PriceFileError, match=f"bad.csv{message}"):
        read_hourly_prices(path, "HB_WEST")


# -- AS clearing prices ----------------------------------------------------------------------


def test_both_as_layouts_read_the_same_prices() -> None:
    wide, long = read_reserve_prices([AS_WIDE]), read_reserve_prices([AS_LONG])
    assert wide.prices == long.prices
    assert len(wide.prices) == 73  # three days, the fall-back one 25 hours long
    first = min(wide.prices)
    assert wide.prices[first] == {"REGDN": 1.1, "REGUP": 2.1, "RRS": 3.1, "NSRS": 1.6, "ECRS": 4.1}
    repeated = [t for t in wide.prices if label(t).endswith("*")]
    assert [label(t) for t in repeated] == ["2024-11-03 HE02*"]
    assert wide.prices[repeated[0]]["RRS"] == pytest.approx(3.25)  # the Y row, not the N one


def test_a_blank_price_is_no_market(tmp_path: Path) -> None:
    path = tmp_path / "as.csv"
    path.write_text("Delivery Date,Hour Ending,Repeated Hour Flag,REGDN,REGUP ,RRS,NSPIN,ECRS\n"
                    "06/09/2023,24:00,N,1,2,3,4,\n")  # fmt: skip
    got = read_reserve_prices([path])
    assert next(iter(got.prices.values()))["ECRS"] is None


def test_an_hour_in_two_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(
        PriceFileError,
        match=r"as_np4-188-cd.*:2: 2024-11-02 HE01 REGDN already at .*as_np4-181-er.*:2",
    ):
        read_reserve_prices([AS_WIDE, AS_LONG])


def test_a_gap_inside_an_as_file_names_the_line(tmp_path: Path) -> None:
    lines = AS_WIDE.read_text().splitlines()
    path = tmp_path / "gap.csv"
    path.write_text("\n".join(lines[:10] + lines[12:]) + "\n")
    with pytest.raises(
        PriceFileError, match=r"gap.csv:10: 2 hour.s. missing: 2024-11-02 HE10 .. 2024-11-02 HE11"
    ):
        read_reserve_prices([path])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Delivery Date,Price\n01/01/2024,3\n", ":1: unknown CSV layout"),
        ("DeliveryDate,HourEnding,AncillaryType,MCPC,DSTFlag\n01/01/2024,01:00,FOO,1,N\n",
         ":2: AncillaryType 'FOO' is not one of"),
        ("DeliveryDate,HourEnding,AncillaryType,MCPC,DSTFlag\n01/01/2024,01:00,RRS,-1,N\n",
         r":2: MCPC -1 is outside \[0,"),
        ("DeliveryDate,HourEnding,AncillaryType,MCPC,DSTFlag\n01/01/2024,1,RRS,1,N\n",
         ":2: hour ending '1' is not like 01:00"),
        ("DeliveryDate,HourEnding,AncillaryType,MCPC,DSTFlag\n01/01/2024,01:00,RRS,1,Y\n",
         ":2: DST flag set but"),
    ],
)  # fmt: skip
def test_bad_as_files_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PriceFileError, match=f"bad.csv{message}"):
        read_reserve_prices([path])


# -- 4CP intervals and ERCOT load ------------------------------------------------------------


def test_4cp_intervals_by_year(tmp_path: Path) -> None:
    path = write_4cp(tmp_path / "4cp.csv", [(2024, 6, "2024-06-30", "17:30", "17:45"),
                                             (2024, 9, "2024-09-20", "15:45", "16:00")])  # fmt: skip
    peaks = read_4cp_intervals(path)
    assert [p.describe() for p in peaks[2024]] == ["2024-06-30 17:30", "2024-09-20 15:45"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((2024, 5, "2024-05-30", "17:30", "17:45"), "not in June-September"),
        ((2024, 6, "2024-07-01", "17:30", "17:45"), "not in June-September of 2024"),
        ((2024, 6, "2024-06-30", "17:30", "18:00"), "is 15 minutes"),
        ((2024, 6, "2024-06-30", "5pm", "17:45"), "'5pm' is not HH:MM"),
    ],
)
def test_bad_4cp_rows_name_the_line(
    tmp_path: Path, row: tuple[int, int, str, str, str], message: str
) -> None:
    path = write_4cp(tmp_path / "4cp.csv", [(2024, 7, "2024-07-01", "16:45", "17:00"), row])
    with pytest.raises(PriceFileError, match=f"4cp.csv:3: .*{message}"):
        read_4cp_intervals(path)


def test_a_month_twice_is_an_error(tmp_path: Path) -> None:
    rows = [(2024, 7, "2024-07-01", "16:45", "17:00"), (2024, 7, "2024-07-02", "16:45", "17:00")]
    with pytest.raises(PriceFileError, match=r"4cp\.csv:3: 2024-07 has a second 4CP interval"):
        read_4cp_intervals(write_4cp(tmp_path / "4cp.csv", rows))


def test_load_file_layout_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "load.csv"
    path.write_text(
        "OperDay,HourEnding,TOTAL,DSTFlag\n07/01/2024,17:00,80000.5,N\n07/01/2024,18:00,-3,N\n"
    )
    with pytest.raises(PriceFileError, match=r"load\.csv:3: TOTAL -3 is not a load"):
        read_ercot_load(path)
    path.write_text("OperDay,HourEnding,TOTAL,DSTFlag\n07/01/2024,17:00,80000.5,N\n")
    assert list(read_ercot_load(path).values()) == [80000.5]
    path.write_text("Day,Load\n")
    with pytest.raises(PriceFileError, match=r"load\.csv:1: unknown CSV layout"):
        read_ercot_load(path)


# -- the real files --------------------------------------------------------------------------


@needs_real_data
def test_real_hub_table_2024_has_the_spring_forward_week_missing() -> None:
    with pytest.raises(
        PriceFileError, match=r":1658: HB_WEST: 169 hour.s. missing: 2024-03-10 HE02"
    ):
        read_hourly_prices(REAL_HUB, "HB_WEST", "rt", date(2024, 1, 1), date(2024, 12, 31))
    got = read_hourly_prices(
        REAL_HUB, "HB_WEST", "rt", date(2024, 1, 1), date(2024, 12, 31), allow_gaps=True
    )
    # 8,784 hours in 2024, less the week and the fall-back hour the table cannot hold
    assert len(got.records) == 8784 - 169 - 1


@needs_real_data
def test_real_as_files_cover_2024_to_feb_2026_and_match_the_readme() -> None:
    got = read_reserve_prices(REAL_AS)
    assert got.coverage() == "2024-01-01 HE01 .. 2026-02-14 HE24"
    ecrs = {t: p["ECRS"] for t, p in got.prices.items() if p["ECRS"] is not None and t >= 1.76e9}
    peak = max(ecrs, key=lambda t: ecrs[t] or 0.0)
    # the data README's DAM ECRS max after RTC+B (2025-12-05, epoch 1.76e9 is 2025-10-10)
    assert (label(peak), ecrs[peak]) == ("2026-01-26 HE09", 1000.65)


@needs_real_data
def test_real_4cp_and_load_files() -> None:
    peaks = read_4cp_intervals(REAL_4CP)
    assert sorted(peaks) == [2021, 2022, 2023, 2024, 2025]
    assert all(len(p) == 4 for p in peaks.values())
    assert peaks[2025][3].describe() == "2025-09-04 17:15"
    load = read_ercot_load(REAL_LOAD)
    assert len(load) == 43776
