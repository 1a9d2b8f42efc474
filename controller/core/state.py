"""Controller state carried from one decision to the next, and the per-pool record.

The state is immutable: `decide()` returns a new one and reuses every unchanged pool record, so
a steady-state decision allocates almost nothing. This is also what the state store persists
(I6): obligations, override, per-pool commands and seq; never `memo`, decide()'s last steady
walk (controller/core/memo.py), which is neither stored nor compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, cast

from controller.model import DispatchInstruction, OverrideRequest

if TYPE_CHECKING:
    from controller.core.memo import SteadyWalk

PoolStateName = Literal["running", "curtailed", "ramping", "escalated", "faulted", "tripped"]
AckStatus = Literal["accepted", "rejected", "complied", "shortfall"]

NEVER = -math.inf


@dataclass(frozen=True, slots=True)
class PoolState:
    """The last command for a pool, how it is going, and what the plan says of it."""

    target_kw: float = 0.0
    seq: int = 0
    on: bool = False  # running (target > 0, part load included) vs curtailed: for I7
    changed_at: float = NEVER  # last on/off change, whatever caused it (I7 dwell)
    # When the current unconfirmed episode was first commanded (I9 timer; NEVER: not commanded
    # since start). A further lowering before confirmation keeps it: the timer runs on.
    target_at: float = NEVER
    lowering: bool = False  # the current target is a lowering (or a drift re-command)
    confirmed: bool = True
    escalated_at: float | None = None
    faulted: bool = False
    cut: bool = False  # PDU outlets cut (escalation or frequency trip) until raised again
    tripped: bool = False
    outlets_on: int | None = None  # outlet-switched pools: energised outlets, in fixed order
    reason: str = "price"
    state: str = "curtailed"
    # Seeded at start without telemetry or a stored record: its target is max_kw, an assumption.
    # Its first telemetry re-seeds it unless a decision has commanded it since (CONTRACT 7).
    blind: bool = False


# A frozen dataclass builds in about 1.6 us at 15 fields (one object.__setattr__ call per field),
# and a decision that switches every pool builds one record per pool: 1.6 ms at 1,000 pools.
# `new_pool_state` builds the same record as a plain instance with PoolState's slots, in the
# same order, then makes it a PoolState (CPython allows the class change between identical
# layouts): 0.3 us, and the result is a PoolState in every respect, frozen included
# (tests/unit/test_state_build.py checks that, and that the parameters are the fields).
class _PoolStateDraft:
    __slots__ = PoolState.__slots__

    def __init__(
        self,
        target_kw: float,
        seq: int,
        on: bool,
        changed_at: float,
        target_at: float,
        lowering: bool,
        confirmed: bool,
        escalated_at: float | None,
        faulted: bool,
        cut: bool,
        tripped: bool,
        outlets_on: int | None,
        reason: str,
        state: str,
        blind: bool,
    ) -> None:
        self.target_kw = target_kw
        self.seq = seq
        self.on = on
        self.changed_at = changed_at
        self.target_at = target_at
        self.lowering = lowering
        self.confirmed = confirmed
        self.escalated_at = escalated_at
        self.faulted = faulted
        self.cut = cut
        self.tripped = tripped
        self.outlets_on = outlets_on
        self.reason = reason
        self.state = state
        self.blind = blind
        self.__class__ = PoolState  # type: ignore[assignment]


class _NewPoolState(Protocol):
    def __call__(
        self,
        target_kw: float,
        seq: int,
        on: bool,
        changed_at: float,
        target_at: float,
        lowering: bool,
        confirmed: bool,
        escalated_at: float | None,
        faulted: bool,
        cut: bool,
        tripped: bool,
        outlets_on: int | None,
        reason: str,
        state: str,
        blind: bool,
    ) -> PoolState: ...


# `new_pool_state(...)` is `PoolState(...)` with every field given, in field order.
new_pool_state = cast(_NewPoolState, _PoolStateDraft)


@dataclass(frozen=True, slots=True)
class Obligation:
    """An accepted dispatch instruction and how it is going (dispatch/state)."""

    id: str  # the instruction's id; "EEA" for the EEA state (CONTRACT 7)
    instruction: DispatchInstruction
    deadline: float
    status: AckStatus = "accepted"
    cap_kw: float = 0.0  # the cap it imposed at the last decision
    floor_kw: float = 0.0  # an AWARD: the load it holds against price now (policies/award.py)


@dataclass(frozen=True, slots=True)
class ControllerState:
    started_at: float
    pools: dict[str, PoolState] = field(default_factory=dict)
    obligations: tuple[Obligation, ...] = ()
    override: OverrideRequest | None = None
    trip_active: bool = False
    frequency_ok_since: float | None = None  # above reset_hz continuously since
    last_decision_at: float | None = None
    last_raise_at: float | None = None  # I8: raises come in steps at most once per tick_s
    last_dispatch_at: float | None = None  # heartbeat clock (starts at daemon start)
    # Closed-loop aux estimate (site - GPU - mining), held while pools are in transition: the
    # site meter sees a change before pool telemetry reports it, and that lag is not load.
    aux_estimate_kw: float | None = None
    # Pools seeded without telemetry (PoolState.blind): re-seeded on their first report.
    blind: frozenset[str] = frozenset()
    # decide()'s last fixed-point walk, for the next decision (controller/core/memo.py): made
    # and carried forward by decide() only; every other state (start, restore, curtail_all,
    # reload) has none. Not persisted (persist.py names what is), not compared, not shown.
    memo: SteadyWalk | None = field(default=None, compare=False, repr=False)


def initial_state(started_at: float) -> ControllerState:
    return ControllerState(started_at=started_at, last_dispatch_at=started_at)
