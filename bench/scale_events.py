"""The four events of the scale benchmark, measured from outside the daemon.

"On the wire" is where a device sees a command: a Modbus write when the PDU server parses it,
an MQTT pool cmd when the measuring subscriber receives it (so the broker's hop is included,
for the daemon and the floor alike). Every instant is `time.time()` on the same host.

- ECRS that curtails about half the mining: from its publish; confirmed = the `complied` ack.
- RECALL of it: from its publish; confirmed = a plan with every pool `running` again (raises
  wait for the next tick by design, so first command is up to `tick_s` later).
- override `limit` at half the mining: from its publish; confirmed = a plan bound by the
  override with no pool `ramping` (then `auto` clears it, not measured).
- frequency trip: from the site meter's first read that shows 59.5 Hz; confirmed = a plan with
  every `ufr` pool `tripped` (then 60 Hz again, not measured).

After each event, with the site quiet, the floor replays exactly the commands the event caused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiomqtt

from bench.scale_site import TRIP_HZ
from controller.clock import iso

Plan = dict[str, Any]
Ask = Callable[[tuple[Any, ...]], Awaitable[Any]]
CENTRAL = ZoneInfo("America/Chicago")
TIMEOUT_S = 30.0


@dataclass(slots=True)
class Sample:
    kind: str
    first_ms: float
    last_ms: float
    confirmed_ms: float
    writes: int
    cmds: int
    floor_first_ms: float = float("nan")
    floor_last_ms: float = float("nan")


@dataclass(slots=True)
class Probe:
    """The measuring client: keeps (received at, topic, payload) of every message, nothing else
    while it listens, so a receive instant is never held up by parsing."""

    client: aiomqtt.Client
    prefix: str
    alive: Callable[[], bool] = lambda: True  # the daemon is still running
    log: list[tuple[float, str, bytes]] = field(default_factory=list)
    _parsed: int = 0
    plan: Plan = field(default_factory=dict)
    plan_at: float = 0.0
    acks: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    async def read(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # the broker stops first at the end
            await self._read()

    async def _read(self) -> None:
        async for m in self.client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            self.log.append((time.time(), m.topic.value, payload))

    def _catch_up(self) -> None:
        while self._parsed < len(self.log):
            at, topic, payload = self.log[self._parsed]
            self._parsed += 1
            if topic.endswith("/plan") and payload:
                self.plan, self.plan_at = json.loads(payload), at
            elif topic.endswith("/dispatch/ack"):
                self.acks.append((at, json.loads(payload)))

    async def until(
        self, test: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._catch_up()
            if test():
                return
            if not self.alive():
                raise RuntimeError(f"the daemon exited while waiting for {what}")
            if time.monotonic() > deadline:
                seen = dict(Counter(states(self.plan).values()))
                raise TimeoutError(f"no {what} within {timeout_s:.0f} s; last plan: {seen}")
            await asyncio.sleep(0.01)

    async def plan_after(self, after: float, test: Callable[[Plan], bool], what: str) -> float:
        await self.until(lambda: self.plan_at > after and test(self.plan), what)
        return self.plan_at

    def cmds(self, start: float, stop: float) -> list[tuple[float, str, bytes]]:
        return [
            (at, topic, payload)
            for at, topic, payload in self.log
            if start <= at <= stop and topic.endswith("/cmd")
        ]


def states(plan: Plan) -> dict[str, str]:
    return {name: p["state"] for name, p in plan.get("pools", {}).items()}


def all_running(plan: Plan) -> bool:
    return bool(plan) and all(s == "running" for s in states(plan).values())


class Events:
    def __init__(
        self,
        probe: Probe,
        dispatch_topic: str,
        ufr_pools: frozenset[str],
        drain: Callable[[], Awaitable[list[tuple[float, str, int, tuple[bool, ...]]]]],
        agents: Ask,
        floor: Ask,
    ) -> None:
        self.probe = probe
        self.dispatch_topic = dispatch_topic
        self.ufr_pools = ufr_pools
        self.drain = drain
        self.agents = agents
        self.floor = floor

    @property
    def client(self) -> aiomqtt.Client:
        return self.probe.client

    async def price(self, usd_per_mwh: float = 15.0) -> None:
        stamp = datetime.now(CENTRAL).strftime("%Y-%m-%dT%H:%M:%S")
        record = {
            "SCEDTimestamp": stamp,
            "repeatHourFlag": False,
            "settlementPoint": "HB_WEST",
            "LMP": usd_per_mwh,
        }
        await self.client.publish("ercot/prices/sced", json.dumps(record), qos=1)

    async def settle(self, timeout_s: float = TIMEOUT_S) -> float:
        """Every pool running, then half a second with nothing on the wire; returns mining kW."""
        await self.probe.until(
            lambda: all_running(self.probe.plan), "plan with all running", timeout_s
        )
        await asyncio.sleep(0.5)
        await self.drain()
        return float(self.probe.plan["mining_measured_kw"])

    async def _measure(self, kind: str, t0: float, done: float) -> Sample:
        await asyncio.sleep(0.3)  # a write still in flight lands in this drain
        writes = [w for w in await self.drain() if t0 <= w[0] <= done]
        cmds = self.probe.cmds(t0, done)
        times = [w[0] for w in writes] + [c[0] for c in cmds]
        if not times:
            raise RuntimeError(f"{kind}: no command on the wire")
        sample = Sample(
            kind,
            (min(times) - t0) * 1000,
            (max(times) - t0) * 1000,
            (done - t0) * 1000,
            len(writes),
            len(cmds),
        )
        # The floor: the same writes and cmds, from a bare script, now that the site is quiet.
        started, _ended = await self.floor(
            ("fire", [(w[1], w[2], w[3]) for w in writes], [(c[1], c[2]) for c in cmds])
        )
        await asyncio.sleep(0.3)
        f_writes = [w[0] for w in await self.drain() if w[0] >= started]
        f_cmds = [c[0] for c in self.probe.cmds(started, time.time())]
        f_times = f_writes + f_cmds
        if len(f_times) == len(times):
            sample.floor_first_ms = (min(f_times) - started) * 1000
            sample.floor_last_ms = (max(f_times) - started) * 1000
        return sample

    async def ecrs(self, name: str, mining_kw: float) -> Sample:
        t0 = time.time()
        mw = round(mining_kw / 2000, 3)
        doc = {"id": name, "type": "ECRS", "mw": mw, "notified_at": iso(t0)}
        await self.client.publish(self.dispatch_topic, json.dumps(doc), qos=1)
        await self.probe.until(
            lambda: any(
                a["id"] == name and a["status"] in ("complied", "shortfall", "rejected")
                for _, a in self.probe.acks
            ),
            f"complied ack for {name}",
        )
        done, ack = next(
            (at, a) for at, a in self.probe.acks if a["id"] == name and a["status"] != "accepted"
        )
        if ack["status"] != "complied":
            raise RuntimeError(f"{name}: {ack}")
        return await self._measure("ECRS", t0, done)

    async def recall(self, name: str) -> Sample:
        t0 = time.time()
        doc = {"id": f"{name}-R", "type": "RECALL", "recall_id": name, "notified_at": iso(t0)}
        await self.client.publish(self.dispatch_topic, json.dumps(doc), qos=1)
        done = await self.probe.plan_after(t0, all_running, "plan with all running")
        return await self._measure("RECALL", t0, done)

    async def _override(self, mode: str, **extra: Any) -> float:
        t0 = time.time()
        doc = {"mode": mode, "operator": "bench", "nonce": uuid.uuid4().hex, "issued_at": iso(t0)}
        doc.update(extra)
        await self.client.publish(f"{self.probe.prefix}/override/set", json.dumps(doc), qos=1)
        return t0

    async def override(self, mining_kw: float) -> Sample:
        t0 = await self._override("limit", limit_kw=round(mining_kw / 2, 1), ttl_s=3600)

        def bound(plan: Plan) -> bool:
            return plan["binding"] == "override" and "ramping" not in states(plan).values()

        done = await self.probe.plan_after(t0, bound, "plan bound by the override")
        sample = await self._measure("override", t0, done)
        clear = await self._override("auto")
        await self.probe.plan_after(clear, all_running, "plan with all running")
        return sample

    async def trip(self) -> Sample:
        await self.agents(("frequency", TRIP_HZ))

        def tripped(plan: Plan) -> bool:
            s = states(plan)
            return all(s.get(p) == "tripped" for p in self.ufr_pools)

        await self.probe.plan_after(0.0, tripped, "plan with every ufr pool tripped")
        done = self.probe.plan_at
        t0 = await self.agents(("first_read",))
        sample = await self._measure("trip", t0, done)
        await self.agents(("frequency", 60.0))
        await self.probe.plan_after(done, all_running, "plan with all running")
        return sample
