"""Domain values shared by feeds, the decision core and the drivers.

Times are float seconds since the Unix epoch (UTC); the adapters turn them into ISO 8601 text.
Powers are kW, prices $/MWh, dispatch quantities MW (as ERCOT speaks). All values are frozen:
the core never mutates what it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

PriceProduct = Literal["rt_spp", "sced_lmp", "dam_spp"]


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured value with the time it was taken; past its max age it is unknown."""

    value: float
    at: float


@dataclass(frozen=True, slots=True)
class PriceRecord:
    """One validated price record for a settlement point (NP6-905-CD, NP6-788-CD, NP4-190-CD)."""

    product: PriceProduct
    settlement_point: str
    interval_start: float  # epoch s: 905 interval start, SCED timestamp, DAM hour start
    price_usd_per_mwh: float


@dataclass(frozen=True, slots=True)
class ActingPrice:
    """The price the controller acts on: latest record time wins, same time replaces."""

    price_usd_per_mwh: float
    interval_start: float
    received_at: float
    product: PriceProduct


class DispatchType(StrEnum):
    RRS = "RRS"
    ECRS = "ECRS"
    NSRS = "NSRS"
    ERS10 = "ERS10"
    ERS30 = "ERS30"
    CLR = "CLR"
    LIMIT = "LIMIT"
    EEA = "EEA"
    FOUR_CP = "4CP"
    AWARD = "AWARD"
    RECALL = "RECALL"
    HEARTBEAT = "HEARTBEAT"


REDUCTION_TYPES = frozenset(
    {DispatchType.RRS, DispatchType.ECRS, DispatchType.NSRS, DispatchType.ERS10, DispatchType.ERS30}
)
# The ancillary services an AWARD can carry (CONTRACT 2.2): the reserves a load resource holds.
AWARD_PRODUCTS = ("RRS", "ECRS", "NSRS")


@dataclass(frozen=True, slots=True)
class DispatchInstruction:
    """A validated QSE instruction (CONTRACT 2.2), stamped when it was received.

    `mining_kw_at_receipt` is the measured mining load when the message arrived: the level a
    reduction deployment is measured from (CONTRACT section 7).
    """

    id: str
    type: DispatchType
    notified_at: float
    received_at: float
    mining_kw_at_receipt: float
    mw: float | None = None
    level: int | None = None
    start: float | None = None
    end: float | None = None
    deadline_s: float = 0.0
    recall_id: str | None = None
    product: str | None = None  # AWARD only: one of AWARD_PRODUCTS


OverrideMode = Literal["curtail", "limit", "run", "auto"]


@dataclass(frozen=True, slots=True)
class OverrideRequest:
    """A validated operator override (CONTRACT 2.3): signature, skew and nonce already checked."""

    mode: OverrideMode
    limit_kw: float | None
    expires_at: float | None  # None only for mode "auto"
    operator: str
    reason: str
    issued_at: float
    nonce: str


@dataclass(frozen=True, slots=True)
class PoolTelemetry:
    """What a pool's agent, PLC or PDU outlets last reported.

    `applied_seq` is the newest command sequence the device says it applied (MQTT agents);
    drivers without sequence numbers report the seq of the last command they wrote.
    """

    power_kw: float
    available_kw: float | None
    online: bool
    applied_seq: int
    at: float
