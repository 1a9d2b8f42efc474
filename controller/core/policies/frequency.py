"""Under-frequency trip of `ufr` pools (I11) with its timed reset (CONTRACT section 1).

The fourth stage of the pipeline. A trip leaves the cap as it is: it takes the `ufr` pools off
whatever the cap (the walk cuts them at once), and the others keep their share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from controller.config import Config, DispatchConfig
from controller.core.plan import Reason
from controller.core.policies import Cap
from controller.core.state import ControllerState
from controller.model import Reading

_TRIPPED = Reason("frequency", None, "under-frequency trip: ufr pools are off until the reset")


@dataclass(frozen=True, slots=True)
class TripState:
    active: bool
    ok_since: float | None  # above reset_hz continuously since


class FrequencyStage(NamedTuple):
    cap: Cap
    trip: TripState
    reasons: tuple[Reason, ...]


def stage(
    cap: Cap, state: ControllerState, frequency: Reading | None, config: Config, now: float
) -> FrequencyStage:
    trip = update_trip(
        state.trip_active,
        state.frequency_ok_since,
        frequency,
        config.dispatch,
        config.control.meter_stale_s,
        now,
    )
    return FrequencyStage(cap, trip, (_TRIPPED,) if trip.active else ())


def update_trip(
    active: bool,
    ok_since: float | None,
    frequency: Reading | None,
    cfg: DispatchConfig,
    max_age_s: float,
    now: float,
) -> TripState:
    """Trip at or below trip_hz at once; reset after reset_s continuously above reset_hz.

    A stale or missing frequency neither trips nor resets: the state holds until a fresh reading.
    """
    if frequency is None or now - frequency.at > max_age_s:
        return TripState(active, None if active else ok_since)
    hz = frequency.value
    if hz <= cfg.frequency_trip_hz:
        return TripState(True, None)
    if not active:
        return TripState(False, None)
    if hz > cfg.frequency_reset_hz:
        since = ok_since if ok_since is not None else now
        if now - since >= cfg.frequency_reset_s:
            return TripState(False, None)
        return TripState(True, since)
    return TripState(True, None)
