"""pyasic behind a guard: every call bounded in time and in number, no exception let out.

pyasic's raw RPC read waits up to 100 s and its TCP connect has no timeout at all, so each
call runs under `asyncio.wait_for(miner_timeout_s)`; a semaphore bounds how many run at once
(a 3,000-miner pool is a few thousand sockets, not a few thousand at the same instant). The
return value of an action is not trusted (pyasic misreads some firmwares' replies): the caller
judges by the telemetry that follows, so actions here only say whether the call completed.

A LuxOS limit is one `profileset` of a profile learned at discovery, not pyasic's
`set_power_limit` (config and profiles read again, ATM checked: four RPCs and the config parsed
per action, the agent's main CPU cost on a big pool). A miner that refuses it (ATM on, which
changes profiles itself) goes pyasic's way, which turns ATM off around the change, until it is
found again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import pyasic
from pyasic.errors import APIError
from pyasic.miners.base import BaseMiner
from pyasic.rpc.luxminer import LUXMinerRPCAPI

from controller.agent.ratings import rated_w

logger = logging.getLogger("curtaild.agent")
T = TypeVar("T")

# For firmwares whose limit is continuous (Braiins OS, WhatsMiner...): the range offered to
# the planner, as steps, from half of nominal up.
CONTINUOUS_FLOOR = 0.5
CONTINUOUS_STEPS = 11


@dataclass(frozen=True)
class Discovered:
    handle: Any  # the pyasic miner object
    model: str
    firmware: str
    nominal_w: float | None  # None: not known from this firmware (rated or learned later)
    expected_ths: float | None
    limits_w: tuple[float, ...]  # the profiles of a firmware that limits by profile
    continuous_limit: bool = False  # takes any limit (Braiins OS, WhatsMiner...): see steps()


@dataclass(frozen=True)
class Reading:
    power_w: float | None  # the firmware's own figure; None when it reports none
    hashrate_ths: float | None


def steps(nominal_w: float) -> tuple[float, ...]:
    """The limits offered to the planner for a continuous limiter: half to full power."""
    floor = nominal_w * CONTINUOUS_FLOOR
    step = (nominal_w - floor) / (CONTINUOUS_STEPS - 1)
    return tuple(round(floor + i * step) for i in range(CONTINUOUS_STEPS))


def takes_power_limit(handle: Any) -> bool:
    """The base class's set_power_limit only returns False: a family overriding it takes one."""
    method = getattr(type(handle), "set_power_limit", None)
    return method is not None and method is not BaseMiner.set_power_limit


class MinerDriver:
    def __init__(self, timeout_s: float, concurrency: int = 256) -> None:
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(concurrency)
        self.calls = 0
        self.failures = 0
        self._profiles: dict[str, tuple[tuple[float, str], ...]] = {}  # ip: (W, name) ascending
        self._profileset_refused: set[str] = set()  # ips that take a limit pyasic's way only

    async def _bounded(self, what: str, ip: str, call: Awaitable[T]) -> tuple[bool, T | None]:
        """(completed, value): False on a timeout or any error of the library or network."""
        ok, value, _ = await self._attempt(what, ip, call)
        return ok, value

    async def _attempt(self, what: str, ip: str, call: Awaitable[T]) -> tuple[bool, T | None, bool]:
        """(completed, value, refused): refused when the firmware answered with an error."""
        async with self._slots:
            self.calls += 1
            refused = False
            try:
                return True, await asyncio.wait_for(call, self.timeout_s), False
            except TimeoutError:
                logger.info("miner %s: %s timed out after %g s", ip, what, self.timeout_s)
            except APIError as exc:
                refused = True
                logger.info("miner %s: %s refused: %s", ip, what, exc)
            except Exception as exc:  # noqa: BLE001 (pyasic raises anything; never our exit)
                logger.info("miner %s: %s failed: %r", ip, what, exc)
            self.failures += 1
            return False, None, refused

    async def discover(self, ip: str) -> Discovered | None:
        ok, handle = await self._bounded("get_miner", ip, pyasic.get_miner(ip))
        if not ok or handle is None or type(handle).__name__ == "UnknownMiner":
            return None
        model = str(getattr(handle, "raw_model", None) or getattr(handle, "model", "") or "")
        firmware = str(getattr(handle, "firmware", "") or "")
        _, expected = await self._bounded("expected_hashrate", ip, handle.get_expected_hashrate())
        expected_ths = float(expected) if expected is not None else None
        limits: tuple[float, ...] = ()
        nominal: float | None = rated_w(model)
        continuous = False
        self._profiles.pop(ip, None)
        self._profileset_refused.discard(ip)
        if takes_power_limit(handle):
            limits = await self._presets(ip, handle)
            if limits:
                nominal = max(limits)
            else:
                continuous = True
        return Discovered(handle, model, firmware, nominal, expected_ths, limits, continuous)

    async def _presets(self, ip: str, handle: Any) -> tuple[float, ...]:
        """The preset wattages of a firmware that limits by profile (LuxOS, VNish), ascending."""
        if not getattr(handle, "supports_presets", False):
            return ()
        ok, config = await self._bounded("get_config", ip, handle.get_config())
        presets = getattr(getattr(config, "mining_mode", None), "available_presets", None) or []
        named = {float(p.power): str(p.name) for p in presets if getattr(p, "power", None)}
        if not ok or not named:
            return ()
        if isinstance(getattr(handle, "rpc", None), LUXMinerRPCAPI) and all(named.values()):
            self._profiles[ip] = tuple(sorted(named.items()))
        return tuple(sorted(named))

    async def read(self, ip: str, handle: Any) -> Reading | None:
        """Wattage when the firmware reports it, else the hashrate; None when it does not answer."""
        ok, watts = await self._bounded("get_wattage", ip, handle.get_wattage())
        if not ok:
            return None
        if watts is not None:
            return Reading(float(watts), None)
        ok, rate = await self._bounded("get_hashrate", ip, handle.get_hashrate())
        if not ok:
            return None
        return Reading(None, float(rate) if rate is not None else None)

    async def sleep(self, ip: str, handle: Any) -> bool:
        return (await self._bounded("stop_mining", ip, handle.stop_mining()))[0]

    async def wake(self, ip: str, handle: Any) -> bool:
        return (await self._bounded("resume_mining", ip, handle.resume_mining()))[0]

    async def set_limit(self, ip: str, handle: Any, watts: float) -> bool:
        profiles = self._profiles.get(ip)
        if profiles is not None and ip not in self._profileset_refused:
            fitting = [name for power_w, name in profiles if power_w <= watts]
            if not fitting:
                return False  # under the lowest profile, as pyasic's own answer
            call = handle.rpc.profileset(fitting[-1])
            ok, _, refused = await self._attempt("profileset", ip, call)
            if ok or not refused:
                return ok  # done, or not answering: the reconcile issues it again
            self._profileset_refused.add(ip)
        return (await self._bounded("set_power_limit", ip, handle.set_power_limit(round(watts))))[0]
