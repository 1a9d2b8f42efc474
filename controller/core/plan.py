"""What goes into a decision (Snapshot) and what comes out (Plan, Decision)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from controller.core.state import AckStatus, ControllerState, PoolState
from controller.model import (
    ActingPrice,
    DispatchInstruction,
    OverrideRequest,
    PoolTelemetry,
    Reading,
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The frozen process image a decision runs on (DESIGN point 1).

    Readings keep their timestamps; `decide()` judges their age against `now`. The inboxes hold
    the inputs validated since the last decision, in arrival order.
    """

    price: ActingPrice | None = None
    hashprice_usd_per_ph_day: float | None = None
    meters_kw: Mapping[str, Reading] = field(default_factory=dict)
    frequency_hz: Reading | None = None
    islanded: Reading | None = None  # value 1.0 while on backup power
    pools: Mapping[str, PoolTelemetry] = field(default_factory=dict)
    dispatch_inbox: tuple[DispatchInstruction, ...] = ()
    override_inbox: tuple[OverrideRequest, ...] = ()
    budget_failsafe: bool = False  # the app saw 3 decisions in a row over budget
    # seq of our own retained cmd per pool, read back at start: seq only grows across restarts
    cmd_seq: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DispatchAck:
    """One answer on dispatch/ack (CONTRACT 2.2)."""

    id: str
    status: AckStatus
    reason: str
    target_kw: float | None
    measured_kw: float | None
    at: float


@dataclass(frozen=True, slots=True)
class Plan:
    at: float
    price_usd_per_mwh: float | None
    mining_cap_kw: float
    binding: str
    gpu_reserved_kw: float
    envelope_kw: float
    mining_target_kw: float
    mining_measured_kw: float
    pools: Mapping[str, PoolState]
    failsafe: frozenset[str]


class Reason(NamedTuple):
    """Why the cap is what it is: one per pipeline stage that narrowed it or raised a failsafe.
    (A NamedTuple: one or two are built on every decision, at a third of a dataclass's cost.)

    `stage`: "safety", "dispatch", "override", "frequency", "price", or "failsafe" for a
    failsafe (its name starts the detail). `cap_kw`: the cap once this reason narrowed it;
    None when it did not narrow it (a failsafe that only stops raises, a trip).
    """

    stage: str
    cap_kw: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class Decision:
    plan: Plan
    next_state: ControllerState
    reasons: tuple[Reason, ...]  # in pipeline order
    acks: tuple[DispatchAck, ...] = ()
    changed: bool = True  # anything in the plan differs from the previous decision
    override_changed: bool = False  # the active override differs from the previous state's
    # The largest kW missing over the obligations in shortfall (0 when none is): above the cap
    # now, or more than was running to shed (I5).
    shortfall_kw: float = 0.0
