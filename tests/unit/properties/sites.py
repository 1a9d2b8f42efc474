"""Random sites for the properties: pools, tenants and config sections drawn from tables."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from controller.config import Config
from controller.sim.configs import PoolShape, TenantShape, build_config, site_data

# Cheap generation: a pool, the config sections or a whole step is ONE draw of a few bytes,
# each byte picking an entry of a curated table (`Digits`). A 12-pool, 30-step scenario is then
# about 60 draws instead of 500, which is what keeps 1,000 sequences per property affordable.
# (Bytes, not one big integer: hypothesis draws wide integers heavily biased towards small
# values, which would leave the high digits almost always at their first entry.) Shrinking
# drives bytes to 0, so each table lists its plainest value first, and quiet values are
# repeated in a table to make them the common case.


class Digits:
    """A product of tables (at most 256 entries each) drawn as one byte string."""

    def __init__(self, *tables: tuple[str, Sequence[Any]]) -> None:
        assert all(0 < len(t) <= 256 for _, t in tables)
        self.tables = tables

    def decode(self, code: bytes) -> dict[str, Any]:
        return {
            name: table[b % len(table)] for (name, table), b in zip(self.tables, code, strict=True)
        }

    def one(self) -> st.SearchStrategy[bytes]:
        n = len(self.tables)
        return st.binary(min_size=n, max_size=n)

    def codes(self, min_size: int, max_size: int) -> st.SearchStrategy[list[bytes]]:
        # Decoded by the caller: a `.map` per element costs more than the draw itself.
        return st.lists(self.one(), min_size=min_size, max_size=max_size)


@dataclass(frozen=True)
class Behaviour:
    """How a pool's device answers its commands over the whole sequence."""

    initial_fraction: float  # power at the first decision, share of max_kw
    follow: float  # share of the gap to its target closed per step (0: stuck)
    ack_only: bool  # a stuck device still reports the new seq (acknowledged, not applied)
    available: float  # available_kw as a share of max_kw (modbus/mqtt only)


# Hardware: driver, outlets, outlet_kw; outlets 0 means no PDU (no hard-cut path).
HARDWARE = (
    ("mqtt", 24, 3.5), ("pdu", 24, 3.5), ("modbus", 0, 0.0), ("mqtt", 0, 0.0),
    ("modbus", 24, 10.0), ("pdu", 4, 10.0), ("pdu", 1, 65.5), ("mqtt", 64, 0.5),
    ("pdu", 64, 3.5), ("modbus", 1, 0.0), ("pdu", 2, 0.0),
)  # fmt: skip
POOL_DIGITS = Digits(
    ("hardware", HARDWARE),
    ("max_kw", (3000.0, 500.0, 84.0, 1200.0, 5000.0, 0.0)),
    ("efficiency", (21.5, 15.0, 17.5, 25.0, 30.0, 38.0)),
    ("strike", (0.0, 0.0, 0.0, 60.0, 150.0)),
    ("ufr", (False, True)),
    ("initial", (0.0, 1.0, 0.5)),
    ("follow", (1.0, 1.0, 0.5, 0.0)),
    ("ack_only", (False, True)),
    ("available", (1.0, 1.0, 0.5, 0.0)),
)
# Tenants: firm_kw, number of GPU meters, number of protected PDUs.
TENANTS = ((2000.0, 1, 1), (0.0, 0, 0), (500.0, 2, 1), (2000.0, 0, 2), (500.0, 1, 0))
SITE_DIGITS = Digits(
    ("site_meter", (True, True, True, False)),
    ("headroom", (1.5, 1.0, 0.7, 0.3, 0.0)),
    ("aux_kw", (300.0, 0.0, 1500.0)),
    ("margin_kw", (100.0, 0.0, 500.0)),
    ("backup", (0.0, 0.5, 1.0)),
)
_DWELL = (0.0, 1.0, 5.0, 30.0, 300.0)
ECONOMICS_DIGITS = Digits(
    ("hashprice_usd_per_ph_day", (50.0, 30.0, 80.0)),
    ("pool_fee", (0.02,)),
    ("hysteresis_usd_per_mwh", (5.0, 0.0, 20.0)),
    ("min_run_s", _DWELL),
    ("min_curtail_s", _DWELL),
)
CONTROL_DIGITS = Digits(
    ("tick_s", (1.0, 0.05, 0.5, 2.0)),
    ("ramp_up_kw_per_s", (2000.0, 1e6, 200.0, 20.0)),
    ("confirm_timeout_s", (5.0, 0.5, 2.0)),
)
FEEDS_DIGITS = Digits(
    ("price_stale_s", (1200.0, 10.0, 60.0)),
    ("on_price_stale", ("hold", "curtail")),
    ("dispatch_heartbeat_s", (0.0, 0.0, 30.0)),
    ("on_dispatch_stale", ("curtail", "hold")),
)
QUIET_FEEDS = {
    "price_stale_s": 1e6,
    "on_price_stale": "hold",
    "dispatch_heartbeat_s": 0.0,
    "on_dispatch_stale": "curtail",
}
DISPATCH_CFG_DIGITS = Digits(
    ("frequency_reset_s", (600.0, 0.0, 3.0, 30.0)),
    ("eea1_fraction", (1.0, 0.5, 0.0)),
    ("eea2_fraction", (0.0, 0.5)),
    ("eea3_fraction", (0.0, 0.25)),
    ("frequency_trip_hz", (59.7,)),
    ("frequency_reset_hz", (59.9,)),
)


@dataclass(frozen=True)
class SiteCase:
    pools: tuple[PoolShape, ...]
    behaviours: tuple[Behaviour, ...]
    tenants: tuple[TenantShape, ...]
    data: Mapping[str, Any]
    site_meter: bool

    @functools.cached_property
    def config(self) -> Config:
        """Validated once per example (pydantic-settings validation costs about 2 ms)."""
        return build_config(self.data)


def _pool(index: int, d: Mapping[str, Any], following: bool) -> tuple[PoolShape, Behaviour]:
    driver, outlets, outlet_kw = d["hardware"]
    max_kw = d["max_kw"]
    if driver == "pdu":
        max_kw = min(max_kw, outlets * outlet_kw)
    shape = PoolShape(
        name=f"c{index:02d}",
        driver=driver,
        max_kw=max_kw,
        efficiency_j_per_th=d["efficiency"],
        strike_usd_per_mwh=d["strike"],
        ufr=d["ufr"],
        outlets=outlets,
        outlet_kw=outlet_kw,
    )
    if following:
        return shape, Behaviour(d["initial"], 1.0, d["ack_only"], 1.0)
    return shape, Behaviour(d["initial"], d["follow"], d["ack_only"], d["available"])


TENANT_DIGITS = Digits(
    ("count", (0, 1, 2, 3)),
    ("t0", TENANTS),
    ("t1", TENANTS),
    ("t2", TENANTS),
)
SECTIONS = (
    TENANT_DIGITS,
    SITE_DIGITS,
    ECONOMICS_DIGITS,
    CONTROL_DIGITS,
    FEEDS_DIGITS,
    DISPATCH_CFG_DIGITS,
)
_SECTIONS = Digits(*(table for digits in SECTIONS for table in digits.tables))


@st.composite
def sites(draw: st.DrawFn, *, max_pools: int = 12, price_only: bool = False) -> SiteCase:
    """A random valid site. `price_only`: room for every pool, pools that follow, no failsafes."""
    drawn = draw(POOL_DIGITS.codes(1, max_pools))
    pools, behaviours = zip(
        *(_pool(i, POOL_DIGITS.decode(c), price_only) for i, c in enumerate(drawn)), strict=True
    )
    picked = _SECTIONS.decode(draw(_SECTIONS.one()))
    tenant_d, site, economics, control, feeds, dispatch = (
        {name: picked[name] for name, _ in digits.tables} for digits in SECTIONS
    )
    tenants = tuple(
        TenantShape.numbered(f"t{i}", firm_kw=t[0], meters=t[1], pdus=t[2])
        for i, t in enumerate((tenant_d["t0"], tenant_d["t1"], tenant_d["t2"]))
        if i < tenant_d["count"] and not (price_only and t[1] == 0)
    )
    headroom = max(site["headroom"], 1.0) if price_only else site["headroom"]
    poi_kw = sum(t.firm_kw for t in tenants) + site["aux_kw"] + site["margin_kw"]
    poi_kw += headroom * sum(p.max_kw for p in pools)
    site_meter = price_only or site["site_meter"]
    sections = {
        "economics": economics,
        "control": control,
        "feeds": QUIET_FEEDS if price_only else feeds,
        "dispatch": dispatch,
    }
    data = site_data(
        pools,
        tenants,
        poi_limit_kw=poi_kw,
        backup_limit_kw=site["backup"] * poi_kw,
        aux_kw=site["aux_kw"],
        margin_kw=site["margin_kw"],
        site_meter=site_meter,
        sections=sections,
    )
    return SiteCase(tuple(pools), tuple(behaviours), tenants, data, site_meter)
