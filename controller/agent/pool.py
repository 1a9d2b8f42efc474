"""One pool's miners: discovery, telemetry, carrying out a target, judging by what follows.

Telemetry is the truth: a miner is asleep when it draws under `SLEEP_FRACTION` of nominal,
limited when it draws at or under its limit; an action that the next readings (after
`settle_s`) do not bear out is issued again every poll, whatever pyasic returned for it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from controller.agent.driver import Discovered, MinerDriver, Reading, steps
from controller.agent.planner import Desired, MinerView, Plan, plan
from controller.agent.store import MinerKnowledge, PoolMemory, PoolStore

SLEEP_FRACTION = 0.05  # a miner drawing under 5% of its nominal is not hashing
# An action the telemetry has not borne out this many times in a row: find the miner again
# (a fresh pyasic object). pyasic keeps a LuxOS session id across the miner's reboot and is
# refused with it until it logs on again; a new object logs on.
REDISCOVER_AFTER = 2
LIMIT_TOLERANCE = 1.03  # a limited miner's reading may exceed its limit by this much


@dataclass
class MinerRecord:
    ip: str
    known: MinerKnowledge
    handle: Any = None
    reachable: bool = False
    power_w: float | None = None  # the latest reading (or estimate), None before any
    want: Desired | None = None  # what the last plan wants of it
    acted_at: float = -math.inf
    limit_known: bool = False  # the limit in force is the one we last set (after a restart: not)
    limit_w: float | None = None
    actions: int = 0
    retries: int = 0
    misses: int = 0  # reconcile rounds in a row where telemetry did not bear the action out
    told_sleep: bool | None = None  # what we last told it (None: nothing since start)


@dataclass(frozen=True)
class Defaults:
    nominal_w: float
    j_per_th: float


@dataclass
class PoolCounts:
    up: int = 0
    sleeping: int = 0
    limited: int = 0
    total: int = 0
    pending: int = 0  # wanted a change that telemetry does not show yet


class PoolAgent:
    def __init__(
        self,
        name: str,
        ips: Iterable[str],
        driver: MinerDriver,
        store: PoolStore,
        defaults: Defaults,
        settle_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.driver = driver
        self.store = store
        self.defaults = defaults
        self.settle_s = settle_s
        self.clock = clock
        self.memory: PoolMemory = store.load()
        self.applied_seq = self.memory.applied_seq
        self.target_w: float | None = None
        self.planned_with: frozenset[str] = frozenset()  # the miners reachable at the last plan
        self._acting = asyncio.Lock()  # one plan carried out at a time (cmd, replan, retries)
        self.records = {
            ip: MinerRecord(ip, self.memory.miners.setdefault(ip, MinerKnowledge())) for ip in ips
        }
        for record in self.records.values():
            record.power_w = record.known.last_power_w

    # -- what a miner is worth ----------------------------------------------------------------

    def nominal_w(self, record: MinerRecord) -> float:
        return record.known.nominal_w or self.defaults.nominal_w

    def j_per_th(self, record: MinerRecord) -> float:
        return record.known.j_per_th or self.defaults.j_per_th

    def counted_w(self, record: MinerRecord) -> float:
        """Its reading, else its last known draw, else its nominal (never seen)."""
        return self.nominal_w(record) if record.power_w is None else record.power_w

    def asleep(self, record: MinerRecord) -> bool:
        return record.power_w is not None and record.power_w < SLEEP_FRACTION * self.nominal_w(
            record
        )

    def _recent(self, record: MinerRecord) -> bool:
        """Acted on less than `settle_s` ago: its readings may not show the change yet."""
        return self.clock() - record.acted_at < self.settle_s

    def believed_asleep(self, record: MinerRecord) -> bool:
        """What telemetry says, unless we told it otherwise too recently for telemetry to
        show it (two cmds a second apart must not plan from the readings before the first)."""
        if record.told_sleep is not None and self._recent(record):
            return record.told_sleep
        return self.asleep(record)

    def believed_w(self, record: MinerRecord) -> float:
        if record.want is not None and record.reachable and self._recent(record):
            want = record.want
            return 0.0 if want.sleeping else (want.limit_w or self.nominal_w(record))
        return self.counted_w(record)

    # -- telemetry ----------------------------------------------------------------------------

    async def refresh(self, ips: Iterable[str] | None = None) -> None:
        """Discover the miners not yet found and read the found ones, all at once (bounded)."""
        chosen = [self.records[ip] for ip in (ips if ips is not None else self.records)]
        await asyncio.gather(*(self._refresh_one(r) for r in chosen))

    async def _refresh_one(self, record: MinerRecord) -> None:
        if record.handle is None:
            found = await self.driver.discover(record.ip)
            if found is None:
                record.reachable = False
                return
            self._learn(record, found)
        reading = await self.driver.read(record.ip, record.handle)
        if reading is None:
            record.reachable = False
            return
        record.reachable = True
        self._take(record, reading)

    def _learn(self, record: MinerRecord, found: Discovered) -> None:
        known = record.known
        record.handle = found.handle
        known.model, known.firmware = found.model, found.firmware
        if found.nominal_w is not None:
            known.nominal_w = found.nominal_w
        known.limits_w = list(found.limits_w)
        if found.continuous_limit:
            known.limits_w = list(steps(self.nominal_w(record)))
        if found.expected_ths and known.nominal_w:
            known.j_per_th = known.nominal_w / found.expected_ths

    def _take(self, record: MinerRecord, reading: Reading) -> None:
        known = record.known
        power = reading.power_w
        if power is None and reading.hashrate_ths is not None:
            # No wattage from this firmware (stock Antminer): rated power x share of hashrate.
            power = reading.hashrate_ths * self.j_per_th(record)
        if power is None:
            return
        record.power_w = known.last_power_w = power
        if power >= SLEEP_FRACTION * self.nominal_w(record):
            known.seen_mining = True
            if known.nominal_w is None and record.limit_w is None and reading.power_w is not None:
                known.nominal_w = power  # seen drawing with no limit: that is its nominal

    # -- carrying out a target ----------------------------------------------------------------

    def views(self) -> list[MinerView]:
        views = []
        for r in self.records.values():
            reachable = r.reachable and r.handle is not None
            views.append(
                MinerView(
                    ip=r.ip,
                    reachable=reachable,
                    nominal_w=self.nominal_w(r),
                    j_per_th=self.j_per_th(r),
                    sleeping=self.believed_asleep(r),
                    limit_w=r.limit_w,
                    power_w=self.counted_w(r),
                    limits_w=tuple(r.known.limits_w),
                    settled=r.limit_known or not r.known.limits_w,
                )
            )
        return views

    async def carry_out(self, seq: int, target_kw: float, epoch: int | None = None) -> Plan:
        """Plan against the latest readings, act (cuts first, then raises), read the acted."""
        self.target_w = target_kw * 1000.0
        result = await self._plan_and_act(self.target_w)
        self.applied_seq = self.memory.applied_seq = seq
        if epoch is not None:
            self.memory.epoch = max(self.memory.epoch, epoch)
        self.store.save(self.memory)
        return result

    def reachable(self) -> frozenset[str]:
        return frozenset(ip for ip, r in self.records.items() if r.reachable)

    async def replan_if_changed(self) -> Plan | None:
        """The same target again when miners went silent or came back since the last plan:
        a silent miner's draw is fixed at its last reading, the others make up for it."""
        if self.target_w is None or self.reachable() == self.planned_with:
            return None
        return await self._plan_and_act(self.target_w)

    async def _plan_and_act(self, target_w: float) -> Plan:
        async with self._acting:
            self.planned_with = self.reachable()
            result = plan(self.views(), target_w)
            before_w = {ip: self.believed_w(self.records[ip]) for ip in result.actions}
            for ip, want in result.desired.items():
                self.records[ip].want = want
            await self._act(result.actions, before_w)
            return result

    async def _act(self, actions: dict[str, Desired], before_w: dict[str, float]) -> None:
        cuts: list[tuple[MinerRecord, Desired]] = []
        raises: list[tuple[MinerRecord, Desired]] = []
        for ip, want in actions.items():
            record = self.records[ip]
            now_w = before_w[ip]
            after_w = 0.0 if want.sleeping else (want.limit_w or self.nominal_w(record))
            (cuts if after_w < now_w else raises).append((record, want))
        await asyncio.gather(*(self._apply(r, w) for r, w in cuts))
        await asyncio.gather(*(self._apply(r, w) for r, w in raises))

    async def _apply(self, record: MinerRecord, want: Desired) -> None:
        was_told_sleep = record.told_sleep
        record.acted_at = self.clock()
        record.actions += 1
        ip, handle = record.ip, record.handle
        if want.sleeping:
            record.told_sleep = True
            await self.driver.sleep(ip, handle)
            return
        if record.known.limits_w:
            # Set the limit before waking: a miner wakes at the limit in force.
            limit = want.limit_w if want.limit_w is not None else max(record.known.limits_w)
            if await self.driver.set_limit(ip, handle, limit):
                record.limit_w, record.limit_known = want.limit_w, True
        if self.asleep(record) or record.power_w is None or was_told_sleep:
            await self.driver.wake(ip, handle)
        record.told_sleep = False

    async def reconcile(self) -> int:
        """Issue again what telemetry does not bear out (after `settle_s`); how many."""
        now = self.clock()
        late = []
        for r in self.records.values():
            if r.want is None or not r.reachable or now - r.acted_at < self.settle_s:
                continue
            if self._bears_out(r, r.want):
                r.misses = 0
            else:
                late.append(r)
        if not late:
            return 0
        async with self._acting:
            for record in late:
                record.retries += 1
                record.misses += 1
                if record.misses >= REDISCOVER_AFTER:
                    await self._rediscover(record)
            await asyncio.gather(*(self._apply(r, r.want) for r in late if r.want is not None))
        return len(late)

    async def _rediscover(self, record: MinerRecord) -> None:
        found = await self.driver.discover(record.ip)
        record.misses = 0
        if found is not None:
            self._learn(record, found)

    def _bears_out(self, record: MinerRecord, want: Desired) -> bool:
        if record.power_w is None:
            return False
        if want.sleeping:
            return self.asleep(record)
        if self.asleep(record):
            return False
        return want.limit_w is None or record.power_w <= want.limit_w * LIMIT_TOLERANCE

    # -- reporting ----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        records = list(self.records.values())
        power_w = sum(self.counted_w(r) for r in records)
        available_w = sum(self.nominal_w(r) for r in records if r.reachable)
        state: dict[str, Any] = {
            "seq": self.applied_seq,
            "power_kw": round(power_w / 1000.0, 3),
            "available_kw": round(available_w / 1000.0, 3),
            "online": any(r.reachable for r in records),
        }
        if self.memory.epoch:  # only once a leadership epoch was obeyed: 2.4 unchanged without
            state["epoch"] = self.memory.epoch
        return state

    def counts(self) -> PoolCounts:
        counts = PoolCounts(total=len(self.records))
        for r in self.records.values():
            counts.up += r.reachable
            counts.sleeping += r.reachable and self.asleep(r)
            counts.limited += r.reachable and not self.asleep(r) and r.limit_w is not None
            counts.pending += r.want is not None and r.reachable and not self._bears_out(r, r.want)
        return counts

    def save(self) -> None:
        self.store.save(self.memory)
