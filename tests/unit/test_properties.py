"""Hypothesis properties of decide() over random sites, feeds and faults (CONTRACT section 4).

Every property drives decide() through a SEQUENCE of decisions over advancing time: the pools'
telemetry of step k follows (or lags, ignores, drops) the plan of step k-1, and each step may
bring a price record, meter readings (fresh, stale, absent), a frequency reading, a pool fault,
a dispatch instruction and an override. The test keeps its own model of the inputs (`Oracle`:
active obligations and their levels, the override, price and feed freshness, the frequency
trip, the GPU reservation), written from the CONTRACT rather than from the core, and checks each
decision against it.

Sites and steps are drawn from small tables of meaningful values (see `Digits`): cheap to
generate, easy to shrink, and they hit the edges (0 kW pools, 0 kW outlets, 0 s dwell, 0 s
reset, prices on both sides of every breakeven band) far more often than uniform floats would.
A failure prints the whole scenario, one line per pool and per step, and the step it failed at.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from controller.config import Config
from controller.core.decide import decide
from controller.core.plan import Decision, Snapshot
from controller.core.state import ControllerState, initial_state
from controller.model import (
    REDUCTION_TYPES,
    ActingPrice,
    DispatchInstruction,
    DispatchType,
    OverrideRequest,
    PoolTelemetry,
    Reading,
)
from tests.unit.factories import (
    T0,
    PoolShape,
    TenantShape,
    acting_price,
    breakeven_usd_per_mwh,
    build_config,
    outlet_capacity_kw,
    protected_pdu_names,
    site_data,
)

# ---------------------------------------------------------------------------------------------
# Tolerances. Targets are sums of floats; anything beyond a micro-kW per pool is a real excess.

EPS_KW = 1e-6


def slack(n: int, *values: float) -> float:
    return EPS_KW * (n + 1) + 1e-9 * max((abs(v) for v in values), default=0.0)


# ---------------------------------------------------------------------------------------------
# Sites
#
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
        TenantShape(f"t{i}", firm_kw=t[0], meters=t[1], pdus=t[2])
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


# ---------------------------------------------------------------------------------------------
# Steps

DISPATCH_IDS = ("D1", "D2", "D3")
ALL_KINDS = tuple(t.value for t in DispatchType)
REDUCTION_KINDS = tuple(sorted(t.value for t in REDUCTION_TYPES))


@dataclass(frozen=True)
class DispatchEvent:
    kind: str
    msg_id: str
    mw_fraction: float  # of the site's total pool capacity
    level: int  # EEA
    start_offset_s: float | None
    end_offset_s: float | None
    deadline_s: float
    recall_id: str  # RECALL


@dataclass(frozen=True)
class OverrideEvent:
    mode: str
    limit_fraction: float  # limit_kw as a share of the site's total pool capacity
    ttl_s: float


@dataclass(frozen=True)
class Meters:
    site: str  # fresh | stale | absent
    gpu: str  # fresh | stale | absent
    gpu_factor: float  # tenants draw firm_kw x this
    extra_aux_kw: float  # load the site meter sees beyond GPU, mining and configured aux
    islanded: bool


@dataclass(frozen=True)
class Misc:
    price_received_late: bool  # a new record's receipt time is already past price_stale_s
    hashprice: float | None  # live hashprice update
    budget_failsafe: bool  # the app saw three decisions over budget


@dataclass(frozen=True)
class StepInput:
    dt_s: float
    price: float | None  # a new record arrives; None: no new record (the last one ages)
    meters: Meters
    frequency: str
    misc: Misc
    pool_event: tuple[int, str] | None
    dispatch: DispatchEvent | None
    override: OverrideEvent | None


QUIET_METERS = Meters("fresh", "fresh", 1.0, 0.0, False)
QUIET_MISC = Misc(False, None, False)
ALL_METERS = tuple(
    Meters(site, gpu, factor, extra, islanded)
    for site in ("fresh", "stale", "absent")
    for gpu in ("fresh", "stale", "absent")
    for factor in (1.0, 0.5, 0.0, 1.3)
    for extra in (0.0, 400.0)
    for islanded in (False, True)
)
ALL_MISC = tuple(
    Misc(late, hp, budget)
    for late in (False, True)
    for hp in (None, 40.0, 65.0)
    for budget in (False, True)
)
POOL_FAULTS = (
    "offline", "online", "stuck", "unstuck", "available_half", "available_zero",
    "available_full", "absent", "present", "overdraw",
)  # fmt: skip
POOL_EVENTS = tuple((i, kind) for kind in POOL_FAULTS for i in range(12))
OVERRIDES = tuple(
    OverrideEvent(mode, fraction, ttl)
    for mode in ("curtail", "limit", "run", "auto")
    for fraction in (0.5, 0.0, 0.2, 2.0)
    for ttl in (600.0, 1.0, 10.0, 86400.0)
)
# Round values on both sides of every breakeven, a few just inside/outside h/2 bands at
# hashprice 50 (breakevens 53.7, 68.1, 81.7, 95.0, 116.7, 136.1), negatives and spikes.
PRICES = (
    40.0, 20.0, 60.0, 80.0, 100.0, 120.0, 150.0, 0.0, -50.0, 5000.0, 70.0, 90.0,
    97.6, 92.4, 70.5, 65.6, 138.7, 133.5, 56.3, 51.1, 84.2, 79.1, 119.2, 114.1, -250.0, 9999.0,
)  # fmt: skip


@dataclass(frozen=True)
class StepProfile:
    """The value tables a step is drawn from; focused properties use narrower ones."""

    dt_s: tuple[float, ...] = (1.0, 0.05, 0.3, 2.0, 0.0, 5.0, 30.0, 400.0)
    new_price: tuple[bool, ...] = (False, True)
    prices: tuple[float, ...] = PRICES
    dispatch_kinds: tuple[str, ...] = ALL_KINDS
    dispatch_ids: tuple[str, ...] = DISPATCH_IDS
    end_offsets: tuple[float | None, ...] = (None, 5.0, 60.0, 900.0)
    dispatch_rate: tuple[bool, ...] = (False, False, True)
    overrides: tuple[OverrideEvent | None, ...] = (None,) * 192 + OVERRIDES
    # Each fault table is gated by a flag table: (False, False, False, True) is a 1-in-4 step.
    pool_event_rate: tuple[bool, ...] = (False, False, False, True)
    pool_events: tuple[tuple[int, str] | None, ...] = POOL_EVENTS
    meters_rate: tuple[bool, ...] = (False, False, False, True)
    meters: tuple[Meters, ...] = ALL_METERS
    misc_rate: tuple[bool, ...] = (False, False, False, True)
    misc: tuple[Misc, ...] = ALL_MISC
    frequencies: tuple[str, ...] = ("nominal",) * 12 + (
        "trip", "between", "above", "stale_trip", "stale_nominal", "missing",
    )  # fmt: skip
    faults: bool = True

    def digits(self) -> Digits:
        return Digits(
            ("dispatch", self.dispatch_rate),
            ("kind", self.dispatch_kinds),
            ("msg_id", self.dispatch_ids),
            ("mw_fraction", (0.3, 0.0, 0.1, 0.6, 1.2)),
            ("level", (0, 1, 2, 3)),
            ("start_offset_s", (None, 0.0, -5.0, 10.0)),
            ("end_offset_s", self.end_offsets),
            ("deadline_s", (0.0, 10.0, 600.0)),
            ("recall_id", (*self.dispatch_ids, "nope")),
            ("override", self.overrides),
            ("pool_event_rate", self.pool_event_rate),
            ("pool_event", self.pool_events),
            ("misc_rate", self.misc_rate),
            ("misc", self.misc),
            ("meters_rate", self.meters_rate),
            ("meters", self.meters),
            ("frequency", self.frequencies),
            ("new_price", self.new_price),
            ("price", self.prices),
            ("price_jitter", (0.0, 0.0, 0.0, 0.0, -0.01, 0.01, -1.7, 1.7, -3.3, 3.3)),
            ("dt_s", self.dt_s),
        )


def _step(d: Mapping[str, Any]) -> StepInput:
    dispatch = None
    if d["dispatch"]:
        dispatch = DispatchEvent(
            d["kind"],
            d["msg_id"],
            d["mw_fraction"],
            d["level"],
            d["start_offset_s"],
            d["end_offset_s"],
            d["deadline_s"],
            d["recall_id"],
        )
    return StepInput(
        dt_s=d["dt_s"],
        price=d["price"] + d["price_jitter"] if d["new_price"] else None,
        meters=d["meters"] if d["meters_rate"] else QUIET_METERS,
        frequency=d["frequency"],
        misc=d["misc"] if d["misc_rate"] else QUIET_MISC,
        pool_event=d["pool_event"] if d["pool_event_rate"] else None,
        dispatch=dispatch,
        override=d["override"],
    )


DEFAULT = StepProfile()
REDUCTION_FOCUS = StepProfile(
    prices=(-50.0, 0.0, 20.0, 10.0, -200.0, 150.0, 40.0),
    dispatch_kinds=(*REDUCTION_KINDS, *REDUCTION_KINDS, "RECALL", "HEARTBEAT", "CLR", "EEA"),
    # QSE ids are free text: one that reads "EEA" must not be taken for the EEA state.
    dispatch_ids=("D1", "D2", "EEA"),
    dispatch_rate=(False, True),
    end_offsets=(None, None, None, 60.0, 900.0),
)
PRICE_ONLY = StepProfile(
    dt_s=(1.0, 0.5, 2.0, 5.0, 0.0, 30.0, 120.0, 400.0),
    new_price=(True,),
    dispatch_rate=(False,),
    overrides=(None,),
    pool_event_rate=(False,),
    meters_rate=(False,),
    misc_rate=(False, True),
    misc=(QUIET_MISC, Misc(False, 40.0, False), Misc(False, 65.0, False)),
    frequencies=("nominal",),
    faults=False,
)
_STEP_DIGITS = {prof: prof.digits() for prof in (DEFAULT, REDUCTION_FOCUS, PRICE_ONLY)}


@dataclass(frozen=True)
class Scenario:
    site: SiteCase
    steps: tuple[StepInput, ...]
    ghost_telemetry: bool  # telemetry also arrives for names that are not pools

    @property
    def behaviours(self) -> tuple[Behaviour, ...]:
        return self.site.behaviours

    def __repr__(self) -> str:
        lines = ["Scenario("]
        lines += [f"  pool {p!r}" for p in self.site.pools]
        lines += [f"  tenant {t!r}" for t in self.site.tenants]
        site = self.site.data["site"]
        lines.append(f"  site {site!r} site_meter={self.site.site_meter}")
        for key in ("economics", "control", "feeds", "dispatch"):
            lines.append(f"  {key} {self.site.data[key]!r}")
        lines += [f"  behaviour[{i}] {b!r}" for i, b in enumerate(self.behaviours)]
        lines.append(f"  ghost_telemetry={self.ghost_telemetry}")
        lines += [f"  step[{i}] {s!r}" for i, s in enumerate(self.steps)]
        lines.append(")")
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    prof: StepProfile = DEFAULT,
    min_steps: int = 5,
    max_steps: int = 30,
    max_pools: int = 12,
) -> Scenario:
    site = draw(sites(max_pools=max_pools, price_only=not prof.faults))
    digits = _STEP_DIGITS[prof]
    steps = tuple(_step(digits.decode(c)) for c in draw(digits.codes(min_steps, max_steps)))
    ghost = prof.faults and draw(st.booleans())
    return Scenario(site, steps, ghost)


# ---------------------------------------------------------------------------------------------
# The oracle: the contract's model of the inputs, kept independently of the core


@dataclass
class ObligationModel:
    instruction: DispatchInstruction
    level_kw: float  # mining load at the first receipt of this id and type (I5)


@dataclass(frozen=True)
class View:
    """What the contract says must hold at one decision."""

    caps: tuple[tuple[str, float], ...]  # every active cap on mining load, with its origin
    reductions: tuple[tuple[str, float], ...]  # active reduction deployments: level - mw
    eea_fraction: float | None
    override: OverrideRequest | None
    price_fresh: bool
    price_usd_per_mwh: float | None
    hashprice: float
    never_raise: tuple[str, ...]  # why no pool may rise (I3, hold failsafes)
    gpu_reserved_kw: float
    gpu_measured_kw: Mapping[str, float]
    limit_kw: float  # POI or backup
    ufr_must_trip: bool
    trip_seen: bool


@dataclass
class Oracle:
    config: Config
    started_at: float
    obligations: dict[str, ObligationModel] = field(default_factory=dict)
    eea_level: int = 0
    override: OverrideRequest | None = None
    last_dispatch_at: float | None = None
    trip_seen: bool = False
    tripped: bool = False
    above_since: float | None = None

    def observe(self, snap: Snapshot, now: float) -> View:
        cfg = self.config
        for msg in snap.dispatch_inbox:
            self._fold(msg)
        self.obligations = {
            k: o
            for k, o in self.obligations.items()
            if o.instruction.end is None or now < o.instruction.end
        }
        for request in snap.override_inbox:
            self.override = None if request.mode == "auto" else request
        expires_at = None if self.override is None else self.override.expires_at
        if expires_at is not None and now >= expires_at:
            self.override = None

        max_age_s = cfg.control.meter_stale_s
        reserved_kw = 0.0
        gpu_measured: dict[str, float] = {}
        for tenant in cfg.gpu_tenants:
            measured = sum(snap.meters_kw[m].value for m in tenant.meters if m in snap.meters_kw)
            gpu_measured[tenant.name] = measured
            reserved_kw += max(tenant.firm_kw, measured)
        islanded = snap.islanded is not None and snap.islanded.value >= 0.5
        limit_kw = cfg.site.backup_limit_kw if islanded else cfg.site.poi_limit_kw
        envelope_kw = max(0.0, limit_kw - reserved_kw - cfg.site.aux_kw - cfg.site.margin_kw)

        caps: list[tuple[str, float]] = [("safety envelope", envelope_kw)]
        reductions: list[tuple[str, float]] = []
        for key, ob in self.obligations.items():
            msg = ob.instruction
            start = msg.start if msg.start is not None else msg.notified_at
            if now < start:
                continue
            mw_kw = (msg.mw or 0.0) * 1000.0
            if msg.type in REDUCTION_TYPES:
                cap = max(0.0, ob.level_kw - mw_kw)
                reductions.append((key, cap))
                caps.append((f"{msg.type} {key}", cap))
            elif msg.type is DispatchType.CLR:
                caps.append((f"CLR {key}", mw_kw))
            elif msg.type is DispatchType.LIMIT:
                room = mw_kw - cfg.site.margin_kw - reserved_kw - cfg.site.aux_kw
                caps.append((f"LIMIT {key}", max(0.0, room)))
            elif msg.type is DispatchType.FOUR_CP:
                caps.append((f"4CP {key}", 0.0))
        if self.override is not None and self.override.mode == "curtail":
            caps.append(("override curtail", 0.0))
        if self.override is not None and self.override.mode == "limit":
            caps.append(("override limit", self.override.limit_kw or 0.0))

        if snap.price is None:
            price_stale = now - self.started_at > cfg.feeds.price_stale_s
        else:
            price_stale = now - snap.price.received_at > cfg.feeds.price_stale_s
        if price_stale and cfg.feeds.on_price_stale == "curtail":
            caps.append(("price stale: curtail", 0.0))

        never_raise: list[str] = []
        for msg in snap.dispatch_inbox:
            seen = self.last_dispatch_at
            self.last_dispatch_at = msg.received_at if seen is None else max(seen, msg.received_at)
        heartbeat_s = cfg.feeds.dispatch_heartbeat_s
        last_seen = self.last_dispatch_at if self.last_dispatch_at is not None else self.started_at
        if heartbeat_s > 0 and now - last_seen > heartbeat_s:
            if cfg.feeds.on_dispatch_stale == "curtail":
                caps.append(("dispatch stale: curtail", 0.0))
            else:
                never_raise.append("dispatch stale: hold")
        site_meters = [m.name for m in cfg.meters if m.role == "site"]
        if site_meters:
            reading = snap.meters_kw.get(site_meters[0])
            if reading is None or now - reading.at > max_age_s:
                never_raise.append("site meter stale")
        if snap.budget_failsafe:
            never_raise.append("decision budget")

        self._observe_frequency(snap.frequency_hz, now)
        must_trip = self.tripped and not (
            self.above_since is not None
            and now - self.above_since >= cfg.dispatch.frequency_reset_s
        )
        eea_fraction = None
        if self.eea_level > 0:
            d = cfg.dispatch
            eea_fraction = {1: d.eea1_fraction, 2: d.eea2_fraction}.get(
                self.eea_level, d.eea3_fraction
            )
        return View(
            caps=tuple(caps),
            reductions=tuple(reductions),
            eea_fraction=eea_fraction,
            override=self.override,
            price_fresh=snap.price is not None and not price_stale,
            price_usd_per_mwh=None if snap.price is None else snap.price.price_usd_per_mwh,
            hashprice=snap.hashprice_usd_per_ph_day or cfg.economics.hashprice_usd_per_ph_day,
            never_raise=tuple(never_raise),
            gpu_reserved_kw=reserved_kw,
            gpu_measured_kw=gpu_measured,
            limit_kw=limit_kw,
            ufr_must_trip=must_trip,
            trip_seen=self.trip_seen,
        )

    def _fold(self, msg: DispatchInstruction) -> None:
        if msg.type is DispatchType.HEARTBEAT:
            return
        if msg.type is DispatchType.RECALL:
            self.obligations.pop(msg.recall_id or "", None)
            return
        if msg.type is DispatchType.EEA:
            self.eea_level = msg.level or 0
            return
        previous = self.obligations.get(msg.id)
        level_kw = msg.mining_kw_at_receipt
        if previous is not None and previous.instruction.type is msg.type:
            level_kw = previous.level_kw  # the same instruction resent: same baseline
        self.obligations[msg.id] = ObligationModel(msg, level_kw)

    def _observe_frequency(self, frequency: Reading | None, now: float) -> None:
        """I11: tripped at or below trip_hz; a trip needs reset_s of fresh readings above reset_hz.

        Stale readings neither trip nor reset, and do not break a run above reset_hz here
        (the weakest reading of the contract; the core may be stricter).
        """
        d = self.config.dispatch
        if frequency is None or now - frequency.at > self.config.control.meter_stale_s:
            return
        if frequency.value <= d.frequency_trip_hz:
            self.tripped, self.trip_seen, self.above_since = True, True, None
        elif frequency.value <= d.frequency_reset_hz:
            self.above_since = None
        elif self.tripped and self.above_since is None:
            self.above_since = now
        if (
            self.tripped
            and self.above_since is not None
            and now - self.above_since >= d.frequency_reset_s
        ):
            self.tripped, self.above_since = False, None


# ---------------------------------------------------------------------------------------------
# The world: devices and feeds that answer the plans


FREQUENCY_HZ = {
    "nominal": 60.0,
    "trip": 59.7,
    "between": 59.8,
    "above": 59.95,
    "stale_trip": 59.5,
    "stale_nominal": 60.0,
}


@dataclass
class World:
    config: Config
    scenario: Scenario
    power_kw: dict[str, float]
    seq: dict[str, int]
    online: dict[str, bool]
    stuck: dict[str, bool]
    present: dict[str, bool]
    available: dict[str, float]
    price: ActingPrice | None = None
    hashprice: float | None = None  # live hashprice: the last value received stays
    nonce: int = 0

    @classmethod
    def start(cls, config: Config, scenario: Scenario) -> World:
        pools = config.pools
        behaviours = scenario.behaviours
        return cls(
            config=config,
            scenario=scenario,
            power_kw={
                p.name: b.initial_fraction * p.max_kw
                for p, b in zip(pools, behaviours, strict=True)
            },
            seq={p.name: 0 for p in pools},
            online={p.name: True for p in pools},
            stuck={p.name: b.follow == 0.0 for p, b in zip(pools, behaviours, strict=True)},
            present={p.name: True for p in pools},
            available={p.name: b.available for p, b in zip(pools, behaviours, strict=True)},
        )

    def respond(self, previous: Decision | None, event: tuple[int, str] | None) -> None:
        """The devices act on the last plan during the step's interval."""
        pools = self.config.pools
        if event is not None:
            name = pools[event[0] % len(pools)].name
            kind = event[1]
            if kind in ("offline", "online"):
                self.online[name] = kind == "online"
            elif kind in ("stuck", "unstuck"):
                self.stuck[name] = kind == "stuck"
            elif kind in ("absent", "present"):
                self.present[name] = kind == "present"
            elif kind == "overdraw":  # the largest draw the pool feed accepts (CONTRACT 2.4)
                self.power_kw[name] = 10.0 * pools[event[0] % len(pools)].max_kw
                self.stuck[name] = True
            else:
                self.available[name] = {"half": 0.5, "zero": 0.0, "full": 1.0}[kind[10:]]
        if previous is None:
            return
        for pool, behaviour in zip(pools, self.scenario.behaviours, strict=True):
            ps = previous.plan.pools.get(pool.name)
            if ps is None:  # added by a reload: nothing commanded yet
                continue
            if ps.cut and pool.pdus:
                self.power_kw[pool.name] = 0.0  # our own PDU switch did it
                if not self.stuck[pool.name] or behaviour.ack_only:
                    self.seq[pool.name] = ps.seq
                continue
            if self.stuck[pool.name] or not self.online[pool.name]:
                if behaviour.ack_only:
                    self.seq[pool.name] = ps.seq
                continue
            reachable = min(ps.target_kw, self.available_kw(pool.name, pool.max_kw))
            follow = behaviour.follow if behaviour.follow > 0 else 1.0
            power = self.power_kw[pool.name]
            self.power_kw[pool.name] = power + follow * (reachable - power)
            self.seq[pool.name] = ps.seq

    def available_kw(self, name: str, max_kw: float) -> float:
        return self.available[name] * max_kw

    def snapshot(self, step: StepInput, now: float) -> Snapshot:
        cfg = self.config
        m = step.meters
        stale_at = now - cfg.control.meter_stale_s - 1.0
        if step.price is not None:
            received = now - cfg.feeds.price_stale_s - 1.0 if step.misc.price_received_late else now
            self.price = acting_price(step.price, received)
        if step.misc.hashprice is not None:
            self.hashprice = step.misc.hashprice
        pools: dict[str, PoolTelemetry] = {}
        for pool in cfg.pools:
            if not self.present[pool.name]:
                continue
            available = None
            if pool.driver != "pdu":
                available = self.available_kw(pool.name, pool.max_kw)
            pools[pool.name] = PoolTelemetry(
                self.power_kw[pool.name],
                available,
                self.online[pool.name],
                self.seq[pool.name],
                now,
            )
        if self.scenario.ghost_telemetry:
            for name in [*protected_pdu_names(cfg), "ghost", *(m.name for m in cfg.meters)]:
                pools[name] = PoolTelemetry(5000.0, 5000.0, True, 10**6, now)
        meters: dict[str, Reading] = {}
        gpu_total_kw = 0.0
        gpu_at = None if m.gpu == "absent" else now
        if m.gpu == "stale":
            gpu_at = stale_at
        for tenant in cfg.gpu_tenants:
            drawn_kw = tenant.firm_kw * m.gpu_factor
            gpu_total_kw += drawn_kw
            for meter_name in tenant.meters:
                if gpu_at is not None:
                    meters[meter_name] = Reading(drawn_kw / len(tenant.meters), gpu_at)
        site_kw = gpu_total_kw + sum(self.power_kw.values()) + cfg.site.aux_kw + m.extra_aux_kw
        islanded: Reading | None = Reading(1.0 if m.islanded else 0.0, now)
        for meter in cfg.meters:
            if meter.role == "site":
                if m.site == "absent":
                    islanded = None
                    continue
                at = now if m.site == "fresh" else stale_at
                meters[meter.name] = Reading(site_kw, at)
                islanded = Reading(1.0 if m.islanded else 0.0, at)
        frequency = None
        if step.frequency != "missing":
            at = stale_at if step.frequency.startswith("stale") else now
            frequency = Reading(FREQUENCY_HZ[step.frequency], at)
        mining_kw = sum(t.power_kw for n, t in pools.items() if n in self.power_kw)
        return Snapshot(
            price=self.price,
            hashprice_usd_per_ph_day=self.hashprice,
            meters_kw=meters,
            frequency_hz=frequency,
            islanded=islanded,
            pools=pools,
            dispatch_inbox=self._dispatch(step.dispatch, now, mining_kw),
            override_inbox=self._override(step.override, now),
            budget_failsafe=step.misc.budget_failsafe,
        )

    def _dispatch(
        self, event: DispatchEvent | None, now: float, mining_kw: float
    ) -> tuple[DispatchInstruction, ...]:
        if event is None:
            return ()
        kind = DispatchType(event.kind)
        total_kw = sum(p.max_kw for p in self.config.pools)
        mw = round(event.mw_fraction * total_kw / 1000.0, 3)
        start = None if event.start_offset_s is None else now + event.start_offset_s
        end = None if event.end_offset_s is None else now + event.end_offset_s
        fields: dict[str, Any] = {}
        if kind in REDUCTION_TYPES or kind in (DispatchType.CLR, DispatchType.LIMIT):
            fields = {"mw": mw, "start": start, "end": end, "deadline_s": event.deadline_s}
        elif kind is DispatchType.EEA:
            fields = {"level": event.level}
        elif kind is DispatchType.FOUR_CP:
            start = now if start is None else start
            fields = {"start": start, "end": start + (event.end_offset_s or 60.0)}
        elif kind is DispatchType.RECALL:
            fields = {"recall_id": event.recall_id}
        msg = DispatchInstruction(
            id=event.msg_id,
            type=kind,
            notified_at=now,
            received_at=now,
            mining_kw_at_receipt=mining_kw,
            **fields,
        )
        return (msg,)

    def _override(self, event: OverrideEvent | None, now: float) -> tuple[OverrideRequest, ...]:
        if event is None:
            return ()
        self.nonce += 1
        total_kw = sum(p.max_kw for p in self.config.pools)
        mode = event.mode
        request = OverrideRequest(
            mode=mode,  # type: ignore[arg-type]
            limit_kw=event.limit_fraction * total_kw if mode == "limit" else None,
            expires_at=None if mode == "auto" else now + event.ttl_s,
            operator="op",
            reason="property",
            issued_at=now,
            nonce=f"n{self.nonce}",
        )
        return (request,)


# ---------------------------------------------------------------------------------------------
# Running a scenario


@dataclass(frozen=True)
class StepRecord:
    index: int
    now: float
    dt_s: float  # since the previous decision (0 for the first)
    snap: Snapshot
    state: ControllerState  # the state decide() was given
    decision: Decision
    previous: Decision | None
    view: View

    def targets(self) -> dict[str, float]:
        return {n: ps.target_kw for n, ps in self.decision.plan.pools.items()}

    def previous_targets(self) -> dict[str, float] | None:
        if self.previous is None:
            return None
        return {n: ps.target_kw for n, ps in self.previous.plan.pools.items()}

    def where(self) -> str:
        plan = self.decision.plan
        pools = {n: (round(p.target_kw, 6), p.state, p.reason) for n, p in plan.pools.items()}
        return (
            f"step {self.index} at now=T0+{self.now - T0:g}s (dt {self.dt_s:g}s): "
            f"cap={plan.mining_cap_kw!r} binding={plan.binding} envelope={plan.envelope_kw!r} "
            f"gpu_reserved={plan.gpu_reserved_kw!r} failsafe={sorted(plan.failsafe)} "
            f"pools={pools}"
        )


def run(
    scenario: Scenario,
    *,
    config: Config | None = None,
    reload: Callable[[int], Config | None] | None = None,
) -> list[StepRecord]:
    """decide() over the scenario's steps; `reload(k)` may swap the config before step k."""
    cfg = config if config is not None else scenario.site.config
    world = World.start(cfg, scenario)
    oracle = Oracle(cfg, started_at=T0)
    state = initial_state(T0)
    now = T0
    previous: Decision | None = None
    trace: list[StepRecord] = []
    for k, step in enumerate(scenario.steps):
        if reload is not None:
            new_cfg = reload(k)
            if new_cfg is not None:
                cfg, oracle.config = new_cfg, new_cfg
                world = _carry_world(world, new_cfg)
        now += step.dt_s
        world.respond(previous, step.pool_event)
        snap = world.snapshot(step, now)
        view = oracle.observe(snap, now)
        try:
            decision = decide(snap, state, now, cfg)
        except Exception as exc:
            raise AssertionError(
                f"decide() raised {type(exc).__name__}: {exc} at step {k} (now=T0+{now - T0:g}s)"
            ) from exc
        dt_s = 0.0 if previous is None else now - previous.plan.at
        trace.append(StepRecord(k, now, dt_s, snap, state, decision, previous, view))
        state = decision.next_state
        previous = decision
    return trace


def _carry_world(world: World, config: Config) -> World:
    """After a reload, pools keep their physical state by name; new pools start at 0 kW."""
    site = replace(world.scenario.site, behaviours=_behaviours(config, world))
    carried = World.start(config, replace(world.scenario, site=site))
    for name in carried.power_kw:
        if name in world.power_kw:
            carried.power_kw[name] = world.power_kw[name]
            carried.seq[name] = world.seq[name]
    carried.price = world.price
    carried.hashprice = world.hashprice
    carried.nonce = world.nonce
    return carried


def _behaviours(config: Config, world: World) -> tuple[Behaviour, ...]:
    old = dict(zip((p.name for p in world.config.pools), world.scenario.behaviours, strict=True))
    default = Behaviour(0.0, 1.0, False, 1.0)
    return tuple(old.get(p.name, default) for p in config.pools)


def fail(record: StepRecord, message: str) -> str:
    return f"{message}\n  at {record.where()}"


# ---------------------------------------------------------------------------------------------
# I2, I4: the cap and the targets under it


@given(scenarios())
def test_property_cap_never_exceeded(scenario: Scenario) -> None:
    """I2, I4: the pool targets fit under the mining cap, and the cap under every limit: the
    safety envelope (POI or backup), each active dispatch cap, EEA, the override, failsafes."""
    for rec in run(scenario):
        plan = rec.decision.plan
        n = len(plan.pools)
        total_kw = sum(rec.targets().values())
        assert total_kw <= plan.mining_cap_kw + slack(n, plan.mining_cap_kw), fail(
            rec, f"sum of pool targets {total_kw!r} > mining cap {plan.mining_cap_kw!r}"
        )
        assert abs(plan.mining_target_kw - total_kw) <= slack(n, total_kw), fail(
            rec, f"plan.mining_target_kw {plan.mining_target_kw!r} != sum of targets {total_kw!r}"
        )
        for origin, cap_kw in rec.view.caps:
            assert plan.mining_cap_kw <= cap_kw + slack(n, cap_kw), fail(
                rec, f"mining cap {plan.mining_cap_kw!r} above the {origin} cap {cap_kw!r}"
            )
        envelope_kw = rec.view.caps[0][1]
        assert plan.envelope_kw <= envelope_kw + slack(n, envelope_kw), fail(
            rec, f"envelope {plan.envelope_kw!r} above limit - GPU - aux - margin {envelope_kw!r}"
        )
        assert plan.mining_cap_kw <= plan.envelope_kw + slack(n, plan.envelope_kw), fail(
            rec, "mining cap above the safety envelope"
        )
        if rec.view.eea_fraction is not None:
            eea_cap = rec.view.eea_fraction * plan.envelope_kw
            assert plan.mining_cap_kw <= eea_cap + slack(n, eea_cap), fail(
                rec, f"mining cap above the EEA cap {eea_cap!r}"
            )
        for name, target_kw in rec.targets().items():
            assert target_kw >= 0.0, fail(rec, f"{name}: negative target {target_kw!r}")
        event(f"binding {plan.binding.split(':')[0]}")


@given(scenarios())
def test_property_gpu_reservation_and_envelope_count_each_load_once(scenario: Scenario) -> None:
    """I3: GPU reservation = sum over tenants of max(firm_kw, measured), stale readings counted.
    I2: envelope = limit - GPU reservation - aux - margin.

    The core may find more aux than configured (closed loop on the site meter), but only load
    that is really unexplained: a tenant's draw is already inside its reservation and must not
    be subtracted again. That is checked in steady state (no pool in transition) with every
    meter fresh and every pool reporting, where the world's true aux is known.
    """
    cfg = scenario.site.config
    firm_kw = sum(t.firm_kw for t in cfg.gpu_tenants)
    timeout_s = cfg.control.confirm_timeout_s
    for rec in run(scenario, config=cfg):
        plan = rec.decision.plan
        assert plan.gpu_reserved_kw >= firm_kw - slack(0, firm_kw), fail(
            rec, f"GPU reservation {plan.gpu_reserved_kw!r} < sum of firm_kw {firm_kw!r}"
        )
        for tenant, measured_kw in rec.view.gpu_measured_kw.items():
            assert plan.gpu_reserved_kw >= measured_kw - slack(0, measured_kw), fail(
                rec, f"GPU reservation below tenant {tenant}'s measured {measured_kw!r}"
            )
        reserved_kw = rec.view.gpu_reserved_kw
        assert math.isclose(plan.gpu_reserved_kw, reserved_kw, rel_tol=1e-9, abs_tol=1e-6), fail(
            rec,
            f"GPU reservation {plan.gpu_reserved_kw!r} != sum max(firm, measured) {reserved_kw!r}",
        )
        if not scenario.site.site_meter:
            continue
        m = scenario.steps[rec.index].meters
        settled = all(
            ps.confirmed or rec.now - ps.target_at >= timeout_s for ps in rec.state.pools.values()
        )
        complete = all(p.name in rec.snap.pools for p in cfg.pools)
        if not (settled and complete and m.site == "fresh" and m.gpu == "fresh"):
            continue
        # What the site draws beyond mining and the reservations: aux, plus any tenant load
        # above its reservation (a tenant without meters is reserved at firm_kw).
        unreserved_kw = sum(
            max(0.0, t.firm_kw * m.gpu_factor - t.firm_kw) for t in cfg.gpu_tenants if not t.meters
        )
        aux_kw = max(cfg.site.aux_kw, cfg.site.aux_kw + m.extra_aux_kw + unreserved_kw)
        expected = rec.view.limit_kw - rec.view.gpu_reserved_kw - aux_kw - cfg.site.margin_kw
        expected = max(0.0, expected)
        assert plan.envelope_kw >= expected - slack(len(plan.pools), expected), fail(
            rec,
            f"envelope {plan.envelope_kw!r} < limit {rec.view.limit_kw!r} - reserved "
            f"{rec.view.gpu_reserved_kw!r} - aux {aux_kw!r} - margin {cfg.site.margin_kw!r} "
            f"= {expected!r} (tenants without meters: "
            f"{[t.name for t in cfg.gpu_tenants if not t.meters]})",
        )


# ---------------------------------------------------------------------------------------------
# I1 at the core level


@given(scenarios())
def test_property_plan_names_only_configured_pools(scenario: Scenario) -> None:
    """I1 in the core: a plan names configured pools only (never a protected PDU, a meter or
    a stray telemetry name), and outlet pools get whole outlets within their PDUs."""
    cfg = scenario.site.config
    configured = {p.name for p in cfg.pools}
    protected = protected_pdu_names(cfg)
    steps = {p.name: outlet_capacity_kw(cfg, p) for p in cfg.pools if p.driver == "pdu"}
    for rec in run(scenario):
        plan = rec.decision.plan
        assert set(plan.pools) == configured, fail(rec, f"plan names {sorted(plan.pools)}")
        assert set(rec.decision.next_state.pools) == configured, fail(rec, "state names")
        assert not protected & set(plan.pools), fail(rec, "plan names a protected PDU")
        for pool in cfg.pools:
            ps = plan.pools[pool.name]
            if pool.name not in steps:
                assert ps.outlets_on is None, fail(rec, f"{pool.name}: outlets on a non-pdu pool")
                continue
            outlets = steps[pool.name]
            if ps.outlets_on is None:
                # Unknown outlets are legal only until decide() first commands the pool (I6:
                # a restart leaves running outlets as they are).
                assert ps.target_at == -math.inf, fail(rec, f"{pool.name}: no outlet count")
                continue
            assert 0 <= ps.outlets_on <= len(outlets), fail(rec, f"{pool.name}: outlet count")
            if not ps.cut:
                step_kw = sum(outlets[: ps.outlets_on])
                assert abs(step_kw - ps.target_kw) <= slack(len(outlets), step_kw), fail(
                    rec, f"{pool.name}: target {ps.target_kw!r} is not whole outlets {step_kw!r}"
                )
            assert ps.target_kw <= pool.max_kw + slack(len(outlets), pool.max_kw), fail(
                rec, f"{pool.name}: target above max_kw"
            )


# ---------------------------------------------------------------------------------------------
# I5: reduction deployments


@given(scenarios(prof=REDUCTION_FOCUS))
def test_property_reduction_deployment_never_exceeded(scenario: Scenario) -> None:
    """I5: during RRS/ECRS/NSRS/ERS, mining stays at or under level at receipt - mw, even with
    falling prices, resends, recalls of other ids, EEA messages and overlapping deployments."""
    deployments = 0
    for rec in run(scenario):
        total_kw = sum(rec.targets().values())
        n = len(rec.decision.plan.pools)
        for ob_id, cap_kw in rec.view.reductions:
            deployments += 1
            assert total_kw <= cap_kw + slack(n, cap_kw), fail(
                rec,
                f"reduction {ob_id}: mining target {total_kw!r} > level at receipt - mw "
                f"= {cap_kw!r} (price {rec.view.price_usd_per_mwh!r})",
            )
            listed = {o.id for o in rec.decision.next_state.obligations}
            assert ob_id in listed, fail(rec, f"active deployment {ob_id} is not listed")
    event(f"reduction deployments active: {'yes' if deployments else 'no'}")


# ---------------------------------------------------------------------------------------------
# I4: overrides never widen


@given(scenarios())
def test_property_override_never_raises_above_cap_without_it(scenario: Scenario) -> None:
    """I4: an override lowers the cap or picks `run` below it, never more."""
    cfg = scenario.site.config
    for rec in run(scenario, config=cfg):
        if rec.view.override is None:
            continue
        # The same decision with the override withdrawn: its cap is the ceiling for the override.
        snap = replace(rec.snap, override_inbox=())
        state = replace(rec.state, override=None)
        without = decide(snap, state, rec.now, cfg).plan
        plan = rec.decision.plan
        n = len(plan.pools)
        total_kw = sum(rec.targets().values())
        mode = rec.view.override.mode
        event(f"override {mode} active")
        assert plan.mining_cap_kw <= without.mining_cap_kw + slack(n, without.mining_cap_kw), fail(
            rec, f"override {mode} raised the cap above {without.mining_cap_kw!r}"
        )
        assert total_kw <= without.mining_cap_kw + slack(n, without.mining_cap_kw), fail(
            rec, f"override {mode}: targets {total_kw!r} above the cap without it"
        )
        if mode == "curtail":
            assert total_kw == 0.0, fail(rec, "override curtail left mining load")
        if mode == "limit":
            limit_kw = rec.view.override.limit_kw or 0.0
            assert total_kw <= limit_kw + slack(n, limit_kw), fail(rec, "override limit exceeded")


# ---------------------------------------------------------------------------------------------
# I8 ramp, I3 never raise


@given(scenarios())
def test_property_ramp_up_is_staggered(scenario: Scenario) -> None:
    """I8: raising is staggered at ramp_up_kw_per_s; lowering is immediate.

    The core raises in steps: at most ramp_up_kw_per_s x tick_s per decision, and decisions that
    raise at least tick_s apart, so over any window W the total rise is at most
    ramp x (W + tick_s). (A per-decision bound of ramp x min(dt, tick_s) does not hold by design:
    an event decision 0.05 s after a tick may carry a whole step.)
    """
    cfg = scenario.site.config
    ramp = cfg.control.ramp_up_kw_per_s
    tick_s = cfg.control.tick_s
    step_kw = ramp * tick_s
    last_raise_at: float | None = None
    for rec in run(scenario, config=cfg):
        previous = rec.previous_targets()
        targets = rec.targets()
        if previous is None:
            continue  # see test_property_restart_never_raises_above_telemetry
        rise_kw = sum(max(0.0, targets[n] - previous[n]) for n in targets)
        assert rise_kw <= step_kw + slack(len(targets), step_kw), fail(
            rec, f"targets rose by {rise_kw!r} kW in one decision; a ramp step is {step_kw!r} kW"
        )
        if rise_kw > slack(len(targets)):
            event("targets rose")
            if last_raise_at is not None:
                gap_s = rec.now - last_raise_at
                assert gap_s >= tick_s - 1e-6, fail(
                    rec, f"raised by {rise_kw!r} kW only {gap_s!r}s after the last raise"
                )
            last_raise_at = rec.now


@given(scenarios(min_steps=1, max_steps=1))
def test_property_restart_never_raises_above_telemetry(scenario: Scenario) -> None:
    """I6: the first decision after a (re)start leaves devices as they are or lowers them.

    No pool is commanded above the load its telemetry proves is on: its power for agents and
    PLCs; for an outlet-switched pool, the fewest whole outlets that can carry that power (the
    snapshot has no coil read-back, so more energised outlets cannot be assumed).
    """
    cfg = scenario.site.config
    (rec,) = run(scenario, config=cfg)
    for pool in cfg.pools:
        target_kw = rec.decision.plan.pools[pool.name].target_kw
        t = rec.snap.pools.get(pool.name)
        seen_kw = 0.0 if t is None else t.power_kw
        proven_kw = seen_kw
        if pool.driver == "pdu":
            steps = list(itertools.accumulate(outlet_capacity_kw(cfg, pool), initial=0.0))
            proven_kw = next((kw for kw in steps if kw >= seen_kw - EPS_KW), steps[-1])
        assert target_kw <= proven_kw + slack(0, proven_kw), fail(
            rec,
            f"{pool.name} ({pool.driver}): first target {target_kw!r} kW above the "
            f"{proven_kw!r} kW its telemetry ({seen_kw!r} kW) proves is on",
        )


@given(scenarios())
def test_property_site_meter_stale_never_raises(scenario: Scenario) -> None:
    """I3 (and the hold failsafes): with the site meter stale or absent, the dispatch feed
    stale under `hold`, or the decision budget failsafe, no pool target rises."""
    for rec in run(scenario):
        previous = rec.previous_targets()
        if previous is None or not rec.view.never_raise:
            continue
        failsafe = rec.decision.plan.failsafe
        event(f"never raise: {', '.join(rec.view.never_raise)}")
        if "site meter stale" in rec.view.never_raise:
            assert "site_meter_stale" in failsafe, fail(rec, "site meter stale is not reported")
        for name, target_kw in rec.targets().items():
            assert target_kw <= previous[name] + slack(0, target_kw), fail(
                rec,
                f"{name} rose {previous[name]!r} -> {target_kw!r} while {rec.view.never_raise}",
            )


# ---------------------------------------------------------------------------------------------
# I11 frequency


@given(scenarios())
def test_property_ufr_pools_trip_at_or_below_trip_frequency(scenario: Scenario) -> None:
    """I11: at or below trip_hz every ufr pool is cut (target 0, PDUs cut, `tripped`) and stays
    so until frequency has been above reset_hz for reset_s; only ufr pools ever trip."""
    cfg = scenario.site.config
    ufr = {p.name for p in cfg.pools if p.ufr}
    for rec in run(scenario):
        plan = rec.decision.plan
        for name, ps in plan.pools.items():
            if name in ufr and rec.view.ufr_must_trip:
                event("a ufr pool must be tripped")
                assert ps.target_kw == 0.0, fail(rec, f"{name}: ufr pool not cut")
                assert ps.state == "tripped", fail(rec, f"{name}: ufr pool state {ps.state}")
                assert ps.cut, fail(rec, f"{name}: ufr pool's PDUs not cut")
            if ps.state == "tripped":
                assert name in ufr, fail(rec, f"{name}: a pool without ufr tripped")
                assert rec.view.trip_seen, fail(rec, f"{name}: tripped with no low frequency")


# ---------------------------------------------------------------------------------------------
# Determinism and robustness


@given(scenarios())
def test_property_decide_is_deterministic_and_never_raises(scenario: Scenario) -> None:
    """decide() is a total function: any valid input sequence gives a finite, complete decision
    (I10 in the core; run() turns an exception into a failure naming the step), and equal
    inputs, with an equal config object, give an equal Decision."""
    twin = build_config(scenario.site.data)  # an equal config, another object
    trace = run(scenario)
    assert len(trace) == len(scenario.steps)
    for rec in trace:
        plan = rec.decision.plan
        assert plan.at == rec.now, fail(rec, "plan time")
        assert math.isfinite(plan.mining_cap_kw) and plan.mining_cap_kw >= 0.0, fail(rec, "cap")
        assert all(math.isfinite(ps.target_kw) for ps in plan.pools.values()), fail(rec, "nan")
        assert rec.decision.next_state.last_decision_at == rec.now, fail(rec, "decision time")
        again = decide(rec.snap, rec.state, rec.now, twin)
        assert again == rec.decision, fail(rec, f"decide() differs on equal inputs: {again!r}")


@given(
    scenarios(max_pools=8, max_steps=12),
    st.integers(0, 4),
    st.sampled_from(("rename", "drop", "add")),
)
def test_property_decide_survives_config_reload(
    scenario: Scenario, at_step: int, change: str
) -> None:
    """SIGHUP reload: the state of the old config meets the new config (CONTRACT 5)."""
    pools = list(scenario.site.pools)
    if change == "rename":
        pools[-1] = replace(pools[-1], name="renamed")
    elif change == "drop" and len(pools) > 1:
        pools.pop()
    else:
        pools.append(PoolShape("added", driver="mqtt", max_kw=100.0, outlets=0))
    data = dict(scenario.site.data)
    new = site_data(
        pools,
        scenario.site.tenants,
        poi_limit_kw=data["site"]["poi_limit_kw"] + 100.0,
        backup_limit_kw=data["site"]["backup_limit_kw"],
        aux_kw=data["site"]["aux_kw"],
        margin_kw=data["site"]["margin_kw"],
        site_meter=scenario.site.site_meter,
        sections={k: data[k] for k in ("economics", "control", "feeds", "dispatch")},
    )
    new_cfg = build_config(new)
    trace = run(scenario, reload=lambda k: new_cfg if k == at_step else None)
    for rec in trace[at_step:]:
        plan = rec.decision.plan
        assert set(plan.pools) == {p.name for p in pools}, fail(rec, "plan after reload")
        total_kw = sum(rec.targets().values())
        assert total_kw <= plan.mining_cap_kw + slack(len(pools), plan.mining_cap_kw), fail(
            rec, "cap exceeded after reload"
        )


# ---------------------------------------------------------------------------------------------
# I7: hysteresis band and dwell


def was_on(rec: StepRecord, config: Config) -> dict[str, bool]:
    """Each pool's running state before this decision: the last plan's, or at the first
    decision what telemetry shows (drawing more than the 2% confirm tolerance, I6)."""
    previous = rec.previous_targets()
    if previous is not None:
        return {name: target_kw > 0.0 for name, target_kw in previous.items()}
    out: dict[str, bool] = {}
    for pool in config.pools:
        t = rec.snap.pools.get(pool.name)
        out[pool.name] = t is not None and t.power_kw > 0.02 * pool.max_kw
    return out


def _flips(trace: Sequence[StepRecord], config: Config) -> dict[int, dict[str, float]]:
    """For each step, each pool's last on/off change before it (-inf: never)."""
    last: dict[str, float] = {}
    before: dict[int, dict[str, float]] = {}
    for rec in trace:
        before[rec.index] = dict(last)
        on = was_on(rec, config)
        for name, target_kw in rec.targets().items():
            if (target_kw > 0.0) != on[name]:
                last[name] = rec.now
    return before


@given(scenarios(prof=PRICE_ONLY, max_pools=8))
def test_property_price_switching_respects_band_and_dwell(scenario: Scenario) -> None:
    """Price alone: no caps, faults or failsafes; every switch must be the band's and dwell's."""
    cfg = scenario.site.config
    econ = cfg.economics
    half = econ.hysteresis_usd_per_mwh / 2.0
    trace = run(scenario, config=cfg)
    flips = _flips(trace, cfg)
    pools = {p.name: p for p in cfg.pools}
    for rec in trace:
        price = rec.view.price_usd_per_mwh
        assert price is not None, "every price-only step brings a price"
        assert not rec.decision.plan.failsafe, fail(rec, "failsafe in a price-only scenario")
        before = was_on(rec, cfg)
        for name, target_kw in rec.targets().items():
            be = breakeven_usd_per_mwh(pools[name], rec.view.hashprice, econ.pool_fee)
            since_s = rec.now - flips[rec.index].get(name, -math.inf)
            was, is_on = before[name], target_kw > 0.0
            ps = rec.decision.plan.pools[name]
            if was != is_on:
                event("a pool switched on price")
            if was and not is_on:
                assert price > be + half - 1e-9, fail(
                    rec, f"{name} curtailed at {price!r} <= breakeven {be!r} + h/2 {half!r}"
                )
                assert since_s >= econ.min_run_s, fail(
                    rec, f"{name} curtailed {since_s!r}s after its last change < min_run_s"
                )
            elif is_on and not was:
                assert price < be - half + 1e-9, fail(
                    rec, f"{name} resumed at {price!r} >= breakeven {be!r} - h/2 {half!r}"
                )
                assert since_s >= econ.min_curtail_s, fail(
                    rec, f"{name} resumed {since_s!r}s after its last change < min_curtail_s"
                )
            elif was and price > be + half + 1e-9 and since_s >= econ.min_run_s:
                assert not is_on, fail(rec, f"{name} kept running at {price!r} > be {be!r} + h/2")
            elif not was and price < be - half - 1e-9 and since_s >= econ.min_curtail_s:
                # It wants to run: only the ramp (or a 0 kW pool) may hold it at 0 this step.
                assert ps.reason == "ramp" or pools[name].max_kw <= EPS_KW or is_on, fail(
                    rec, f"{name} not resumed at {price!r} < be {be!r} - h/2 ({ps.reason})"
                )


@given(scenarios())
def test_property_resume_and_price_curtail_respect_band_and_dwell(scenario: Scenario) -> None:
    """CONTRACT 7: whatever curtailed a pool, it resumes only below the band after its dwell
    (or under override `run`); a curtailment labelled `price` must be a price curtailment."""
    cfg = scenario.site.config
    econ = cfg.economics
    half = econ.hysteresis_usd_per_mwh / 2.0
    trace = run(scenario, config=cfg)
    flips = _flips(trace, cfg)
    pools = {p.name: p for p in cfg.pools}
    for rec in trace:
        price = rec.view.price_usd_per_mwh
        run_override = rec.view.override is not None and rec.view.override.mode == "run"
        before = was_on(rec, cfg)
        for name, target_kw in rec.targets().items():
            be = breakeven_usd_per_mwh(pools[name], rec.view.hashprice, econ.pool_fee)
            since_s = rec.now - flips[rec.index].get(name, -math.inf)
            was, is_on = before[name], target_kw > 0.0
            ps = rec.decision.plan.pools[name]
            if is_on and not was and not run_override:
                assert rec.view.price_fresh and price is not None, fail(
                    rec, f"{name} resumed without a fresh price"
                )
                assert price < be - half + 1e-9, fail(
                    rec, f"{name} resumed at {price!r} >= breakeven {be!r} - h/2 {half!r}"
                )
                assert since_s >= econ.min_curtail_s, fail(
                    rec, f"{name} resumed {since_s!r}s after its last change < min_curtail_s"
                )
            if was and not is_on and ps.reason == "price":
                assert rec.view.price_fresh and price is not None, fail(
                    rec, f"{name} curtailed for 'price' without a fresh price"
                )
                assert price > be + half - 1e-9 and since_s >= econ.min_run_s, fail(
                    rec,
                    f"{name} curtailed for 'price' at {price!r} (breakeven {be!r}, h/2 {half!r})"
                    f" {since_s!r}s after its last change",
                )
