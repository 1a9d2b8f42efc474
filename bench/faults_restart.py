"""Fault scenarios around the daemon's own life: kill -9 mid-deployment (after `complied`, and
between `accepted` and `complied`), kill -9 right after a rejected instruction, and mosquitto
restarted mid-deployment. The daemon is the real `curtaild run` (tests.integration.live),
the devices are controller.sim, every time is measured on the broker or on a device."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.faults_common import (
    Env,
    Round,
    ack_arrival,
    arrival,
    db_of,
    site_round,
    stored_audit,
    until,
)
from tests.integration.documents import ecrs, recall, sced
from tests.integration.faults import Sampler, at_most
from tests.integration.site import FLEET_KW, LiveSite
from tests.support import MosquittoBroker, MqttProbe, Received

MQTT_POOLS = ("a1", "a2", "a3")


def full(site: LiveSite) -> bool:
    return abs(site.sim.mining_kw() - FLEET_KW) < 1.0


async def deployed(site: LiveSite, rnd: Round, msg_id: str, *, complied: bool = True) -> float:
    """Fleet running, then a 5 MW ECRS: its cap (kW), once accepted (and complied)."""
    await site.price(20.0)
    await until(lambda: full(site), 5, "fleet running at 20 $/MWh")
    mark = site.probe.mark()
    sent = time.monotonic()
    await site.dispatch(ecrs(msg_id, 5.0))
    accepted = await site.ack(msg_id, "accepted", since=mark)
    rnd.took(
        "ECRS published -> `accepted` ack", sent, await ack_arrival(site, msg_id, "accepted", mark)
    )
    if complied:
        at = await ack_arrival(site, msg_id, "complied", mark)
        rnd.took("ECRS published -> `complied` ack", sent, at)
    return float(accepted["target_kw"])


def last_cmds(site: LiveSite, since: int = 0) -> dict[str, dict[str, Any]]:
    return {p: site.cmds(p, since)[-1][1] for p in MQTT_POOLS if site.cmds(p, since)}


def obligations(doc: dict[str, Any]) -> list[tuple[str, str, float | None]]:
    return [(o["id"], o["type"], o.get("cap_kw")) for o in doc["obligations"]]


def check_acks(rnd: Round, site: LiveSite, msg_id: str, statuses: tuple[str, ...]) -> None:
    """Each status acked on the broker and recorded in the store's audit trail."""
    audit = stored_audit(db_of(site))
    stored = {a["status"] for a in audit if a["event"] == "ack" and a.get("id") == msg_id}
    acked = {a["status"] for a in site.acks(msg_id)}
    for status in statuses:
        rnd.check(status in acked, f"{msg_id}: no `{status}` ack on the broker")
        rnd.check(status in stored, f"{msg_id}: no `{status}` ack record in the store")
    dispatch = [a for a in audit if a["event"] == "dispatch" and a.get("id") == msg_id]
    rnd.check(bool(dispatch), f"{msg_id}: no `dispatch` record in the store")


# -- kill -9 after `complied` --------------------------------------------------------------------


async def kill9_mid_deployment(env: Env, rnd: Round, n: int) -> None:
    msg_id = f"E{n}"
    async with site_round(env, rnd, notify=True) as site:
        cap_kw = await deployed(site, rnd, msg_id)
        await asyncio.sleep(0.3)
        before = last_cmds(site)
        state_before = obligations(site.last(f"{site.prefix}/dispatch/state"))
        async with Sampler(site.sim.mining_kw) as mining:
            mark = await kill_and_restart(site, rnd, state_before, before)
            await site.price(-25.0)  # every pool would run at this price (I5: not now)
            await asyncio.sleep(2.0)
        peak = mining.peak()[1]
        rnd.check(peak <= at_most(cap_kw), f"mining peaked at {peak:.0f} kW over cap {cap_kw}")
        floor = {"target_kw": 0.0}
        raised = [
            (pool, cmd["target_kw"])
            for pool, cmd in last_cmds(site, mark).items()
            if cmd["target_kw"] > before.get(pool, floor)["target_kw"]
        ]
        rnd.check(not raised, f"raised before RECALL: {raised}")
        mark = site.probe.mark()
        sent = time.monotonic()
        await site.dispatch(recall(msg_id))
        at = await arrival(site.probe, f"{site.prefix}/pools/+/cmd", since=mark)
        rnd.took("RECALL -> first pool cmd of the new process", sent, at)
        at = await until(lambda: full(site), 5, "fleet back")
        rnd.took("RECALL -> fleet back at full power", sent, at)
    check_acks(rnd, site, msg_id, ("accepted", "complied"))


async def kill_and_restart(
    site: LiveSite,
    rnd: Round,
    state_before: list[tuple[str, str, float | None]],
    before: dict[str, dict[str, Any]],
) -> int:
    """kill -9, start again, and time what comes back; the probe mark of the restart."""
    assert site.notify is not None
    killed = time.monotonic()
    await site.kill9()
    offline = site.probe.on(f"{site.prefix}/status")[-1].at
    rnd.took("kill -9 -> `offline` (the will) on the broker", killed, offline)
    notified, mark = site.notify.mark(), site.probe.mark()
    await site.restart()
    spawned = site.spawned_at
    ready = await site.notify.wait_for("READY=1", 10.0, since=notified)
    rnd.took("restart -> READY=1", spawned, ready)
    rnd.took("kill -9 -> READY=1 of the new process", killed, ready)
    at = await arrival(
        site.probe, f"{site.prefix}/status", lambda d: d["state"] == "online", 5, mark
    )
    rnd.took("restart -> `online` on the broker", spawned, at)
    at = await arrival(
        site.probe,
        f"{site.prefix}/dispatch/state",
        lambda d: obligations(d) == state_before,
        5,
        mark,
        "dispatch/state with the deployment",
    )
    rnd.took("restart -> the deployment republished (dispatch/state)", spawned, at)
    republished = {p: site.cmds(p, mark) for p in before}
    if not any(republished.values()):
        rnd.notes.append("the new process republished no pool cmd (the old ones stay retained)")
    async with MqttProbe(site.probe.host, site.probe.port, [f"{site.prefix}/pools/+/cmd"]) as new:
        await asyncio.sleep(0.3)  # retained messages arrive on subscription
        for pool, cmd in before.items():
            held = [m.json() for m in new.on(f"{site.prefix}/pools/{pool}/cmd") if m.payload]
            rnd.check(
                bool(held)
                and (held[-1]["seq"], held[-1]["target_kw"]) == (cmd["seq"], cmd["target_kw"]),
                f"{pool}: retained cmd after the restart is not the one in force before",
            )
    return mark


# -- kill -9 between `accepted` and `complied` --------------------------------------------------


async def kill9_before_complied(env: Env, rnd: Round, n: int) -> None:
    """Killed the moment `accepted` arrives: the commands are out, `complied` is not; the next
    process must send it."""
    msg_id = f"K{n}"
    async with site_round(env, rnd) as site:
        cap_kw = await deployed(site, rnd, msg_id, complied=False)
        await site.kill9()
        if any(a["status"] == "complied" for a in site.acks(msg_id)):
            rnd.notes.append("`complied` was out before the kill")
        mark = site.probe.mark()
        await site.restart()
        at = await ack_arrival(site, msg_id, "complied", mark)
        rnd.took("restart -> `complied` ack from the new process", site.spawned_at, at)
        rnd.check(site.sim.mining_kw() <= at_most(cap_kw), "over the cap after the restart")
    check_acks(rnd, site, msg_id, ("accepted", "complied"))


# -- kill -9 right after a rejected instruction -------------------------------------------------


async def kill9_after_rejected(env: Env, rnd: Round, n: int) -> None:
    """An instruction rejected (deadline_s 1e308), then kill -9 as soon as its ack is seen; the
    `rejected` record must be in the audit trail (checked by site_round's audit_gaps)."""
    msg_id = f"BAD{n}"
    async with site_round(env, rnd) as site:
        await site.price(20.0)
        await asyncio.sleep(0.5)
        mark = site.probe.mark()
        sent = time.monotonic()
        await site.dispatch(ecrs(msg_id, 1.0, deadline_s=1e308))
        at = await ack_arrival(site, msg_id, "rejected", mark)
        rnd.took("instruction published -> `rejected` ack", sent, at)
        await site.kill9()
        rnd.took("`rejected` ack seen -> daemon killed (process gone)", at, time.monotonic())
        await site.restart()


# -- an instruction published while the daemon is down --------------------------------------------


async def instruction_while_down(env: Env, rnd: Round, n: int) -> None:
    """kill -9, an ECRS published (QoS 1, not retained, as a QSE gateway sends it) while no
    daemon runs, then the restart: is the instruction ever seen?"""
    msg_id = f"D{n}"
    async with site_round(env, rnd) as site:
        await site.price(20.0)
        await until(lambda: full(site), 5, "fleet running at 20 $/MWh")
        await site.kill9()
        await site.dispatch(ecrs(msg_id, 2.0))
        restarted = time.monotonic()
        await site.restart(wait_online=False)
        try:
            await site.ack(msg_id, "accepted", timeout_s=5.0)
        except AssertionError:
            rnd.check(False, "an ECRS published while the daemon was down: never acked")
            return
        rnd.took("restart -> `accepted` ack of the ECRS queued by the broker", restarted,
                 time.monotonic())  # fmt: skip
        await until(lambda: site.sim.mining_kw() <= at_most(FLEET_KW - 2000), 5, "deployed")
        rnd.took("restart -> the queued ECRS deployed", restarted, time.monotonic())


# -- mosquitto restarted ------------------------------------------------------------------------


async def broker_restart(env: Env, rnd: Round, n: int, *, kill_first: bool = False) -> None:
    """mosquitto stopped for 1 s and started again (no persistence: every retained message is
    gone) during a complied ECRS; a new subscriber times what comes back. `kill_first`: the
    daemon was killed (-9) and restarted after the ECRS, before the broker restart."""
    broker = MosquittoBroker(env.binary)
    broker.start()
    seen_after: list[Received] = []
    try:
        async with site_round(env, rnd, broker=broker, extra=seen_after) as site:
            cap_kw = await deployed(site, rnd, f"B{n}")
            await asyncio.sleep(0.5)
            if kill_first:
                await site.kill9()
                await site.restart()
                await asyncio.sleep(0.5)
            await one_broker_restart(site, broker, rnd, cap_kw, seen_after)
    finally:
        broker.cleanup()


async def one_broker_restart(
    site: LiveSite, broker: MosquittoBroker, rnd: Round, cap_kw: float, seen_after: list[Received]
) -> None:
    prefix = site.prefix
    before = obligations(site.last(f"{prefix}/dispatch/state"))
    cmds = last_cmds(site)
    wanted = {f"{prefix}/{t}" for t in ("status", "plan", "override/state", "dispatch/state")}
    wanted |= {f"{prefix}/pools/{pool}/cmd" for pool in cmds}
    async with Sampler(site.sim.mining_kw) as mining:
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(broker.start)
        up = time.monotonic()
        async with MqttProbe(broker.host, broker.port, [f"{prefix}/#"]) as after:
            rnd.took("broker up -> a new subscriber connected (yardstick)", up, time.monotonic())
            arrivals = await first_arrivals(after, wanted, 15.0)
            missing = sorted(t.removeprefix(prefix + "/") for t in wanted - set(arrivals))
            rnd.check(not missing, f"not republished within 15 s: {', '.join(missing)}")
            if arrivals:
                rnd.took(
                    "broker up -> every retained topic republished", up, max(arrivals.values())
                )
            state = after.on(f"{prefix}/dispatch/state")
            rnd.check(
                bool(state) and obligations(state[-1].json()) == before,
                "dispatch/state after the restart differs from before",
            )
            for pool, cmd in cmds.items():
                again = [m.json() for m in after.on(f"{prefix}/pools/{pool}/cmd")]
                rnd.check(
                    bool(again)
                    and (again[-1]["seq"], again[-1]["target_kw"])
                    == (cmd["seq"], cmd["target_kw"]),
                    f"{pool}: cmd not republished as it was",
                )
            await after.publish(f"{prefix}-ercot/prices/rt", sced(-25.0))
            await asyncio.sleep(1.5)
            seen_after.extend(after.messages)
    peak = mining.peak()[1]
    rnd.check(peak <= at_most(cap_kw), f"mining peaked at {peak:.0f} kW over cap {cap_kw}")
    rnd.check(site.sim.mining_kw() >= cap_kw * 0.98, "over-curtailed after the broker restart")


async def first_arrivals(probe: MqttProbe, topics: set[str], timeout_s: float) -> dict[str, float]:
    arrivals: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while set(arrivals) != topics and time.monotonic() < deadline:
        for m in probe.messages:
            if m.topic in topics and m.payload and m.topic not in arrivals:
                arrivals[m.topic] = m.at
        await asyncio.sleep(0.01)
    return arrivals
