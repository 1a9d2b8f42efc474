"""What a simulated miner is: its rating, its mode and a wattage that moves to its setpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

# A real miner's power settles over about a second after a mode or limit change (fans and
# boards ramp); telemetry read in between shows the draw on its way.
RAMP_S = 1.0
# A sleeping miner's control board still draws a little; pyasic-era firmwares report it.
SLEEP_W = 0.0


@dataclass
class SimMinerState:
    """One miner. `limit_w` None: no limit (nominal draw); `sleeping`: hashing stopped."""

    ip: str
    model: str = "Antminer S19j Pro"
    nominal_w: float = 3068.0
    j_per_th: float = 29.5
    sleeping: bool = False
    limit_w: float | None = None
    answering: bool = True  # False: accepts connections, never answers (a hung controller)
    changed_at: float = -1.0  # clock() of the last mode or limit change (benchmarks read it)
    clock: Clock = time.monotonic
    _from_w: float = field(default=-1.0, repr=False)
    _since: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._from_w = self.setpoint_w()
        self._since = self.clock()

    @property
    def expected_ths(self) -> float:
        return self.nominal_w / self.j_per_th

    def setpoint_w(self) -> float:
        if self.sleeping:
            return SLEEP_W
        if self.limit_w is None:
            return self.nominal_w
        return min(self.nominal_w, self.limit_w)

    def power_w(self) -> float:
        """The draw now: linear from where it was to the setpoint over RAMP_S."""
        done = min(1.0, max(0.0, (self.clock() - self._since) / RAMP_S))
        return self._from_w + (self.setpoint_w() - self._from_w) * done

    def hashrate_ths(self) -> float:
        return 0.0 if self.sleeping else self.power_w() / self.j_per_th

    def set_sleeping(self, sleeping: bool) -> None:
        self._restart_ramp()
        self.sleeping = sleeping

    def set_limit(self, limit_w: float | None) -> None:
        """A power limit (None lifts it); the draw starts moving from where it is now."""
        self._restart_ramp()
        self.limit_w = limit_w

    def _restart_ramp(self) -> None:
        self._from_w = self.power_w()
        self._since = self.changed_at = self.clock()
