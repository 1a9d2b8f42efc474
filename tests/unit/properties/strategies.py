"""Step sequences for the properties: what each step brings, and the `scenarios` strategy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from controller.model import REDUCTION_TYPES, DispatchType
from tests.unit.properties.sites import Behaviour, Digits, SiteCase, sites

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
# STEADY only: a pool whose last report stays and ages (an mqtt agent goes stale after
# pool_stale_s; a polled pool keeps its frozen figures).
SILENT_EVENTS = tuple((i, kind) for kind in ("silent", "heard") for i in range(12))
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
# Awards (I12) against everything that may cut into them: price spikes, reductions, LIMIT,
# CLR, 4CP, EEA, recalls, overrides, trips and pool faults.
AWARD_FOCUS = StepProfile(
    prices=(5000.0, 9999.0, 150.0, 40.0, 138.7, 20.0, 1000.0, -50.0),
    dispatch_kinds=("AWARD",) * 4
    + ("RRS", "ECRS", "NSRS", "LIMIT", "CLR", "4CP", "EEA")
    + ("RECALL", "HEARTBEAT"),
    dispatch_ids=("D1", "D2", "D3"),
    dispatch_rate=(False, True),
    end_offsets=(None, 900.0, 60.0, 5.0),
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
# Long quiet stretches (the decide() memo's fixed points) broken by every kind of event and by
# gaps that turn the dwell, confirm and staleness timers (tests/unit/test_properties_steady.py).
STEADY = StepProfile(
    dt_s=(1.0, 1.0, 1.0, 1.0, 0.3, 0.0, 5.0, 30.0, 400.0),
    new_price=(False, False, True),
    prices=(40.0, 20.0, 150.0, 60.0, 70.5, 92.4, -50.0),
    dispatch_rate=(False,) * 7 + (True,),
    overrides=(None,) * 224 + OVERRIDES[::2],  # a table holds at most 256 entries
    pool_event_rate=(False,) * 7 + (True,),
    pool_events=POOL_EVENTS + SILENT_EVENTS * 3,
    meters_rate=(False,) * 7 + (True,),
    misc_rate=(False,) * 7 + (True,),
    frequencies=("nominal",) * 30 + ("trip", "between", "above", "stale_nominal", "missing"),
)
_STEP_DIGITS = {
    prof: prof.digits() for prof in (DEFAULT, REDUCTION_FOCUS, AWARD_FOCUS, PRICE_ONLY, STEADY)
}


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
