"""Under-frequency trip of `ufr` pools (I11) with its timed reset (CONTRACT section 1)."""

from __future__ import annotations

from dataclasses import dataclass

from controller.config import DispatchConfig
from controller.model import Reading


@dataclass(frozen=True, slots=True)
class TripState:
    active: bool
    ok_since: float | None  # above reset_hz continuously since


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
