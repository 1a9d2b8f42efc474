"""Fault scenarios of the devices around the daemon: PDU servers stopped, slow and back, a pool
agent rebooting at full power or going silent, a stuck agent whose pool was cut, and the site
meter going stale. Devices are controller.sim in this process, sampled every 5 ms."""

from __future__ import annotations

import asyncio
import time

from bench.faults_common import (
    Env,
    Round,
    ack_arrival,
    arrival,
    event_is,
    site_round,
    until,
)
from controller.sim.site import SimSite
from tests.integration.documents import clr, ecrs, override, recall
from tests.integration.faults import Sampler, at_most
from tests.integration.site import FLEET_KW, POI_KW, LiveSite
from tests.support import eventually

CONFIRM_TIMEOUT_S = 1.0  # tests.integration.site's control.confirm_timeout_s


def full(site: LiveSite) -> bool:
    return abs(site.sim.mining_kw() - FLEET_KW) < 1.0


async def running(site: LiveSite) -> None:
    await site.price(20.0)
    await until(lambda: full(site), 5, "fleet running at 20 $/MWh")


# -- a PDU dead and another slow during an escalation -------------------------------------------


async def pdu_dead_and_slow(env: Env, rnd: Round, n: int) -> None:
    """Agents a1-a3 ignore commands (only their PDUs can stop them); pdu-a1 is stopped and
    pdu-a2 answers after 2 s (the daemon gives up after 1 s); then an 11 MW ECRS."""
    stuck = frozenset({"a1", "a2", "a3"})
    async with site_round(env, rnd, stuck=stuck) as site:
        sim = site.sim
        await running(site)
        stopped = time.monotonic()
        await sim.stop_device("pdu-a1")
        sim.model("pdu-a2").stall_s = 2.0
        mark = site.probe.mark()
        sent = time.monotonic()
        msg_id = f"E{n}"
        await site.dispatch(ecrs(msg_id, 11.0, deadline_s=3))
        plc, px, a3 = sim.plcs["plc1"], sim.pdus["pdu-px"], sim.pdus["pdu-a3"]
        at = await until(lambda: plc.setpoint_kw == 0.0, 3, "plc1 setpoint 0")
        rnd.took("ECRS -> plc1 (healthy PLC) setpoint 0", sent, at)
        at = await until(lambda: not any(px.outlets_on), 3, "px outlets off")
        rnd.took("ECRS -> px (healthy outlet pool) outlets off", sent, at)
        at = await until(lambda: not any(a3.outlets_on), 6, "a3 PDU cut")
        rnd.took("ECRS -> a3 (stuck agent, healthy PDU) cut", sent, at)
        events = f"{site.prefix}/events"
        at = await arrival(site.probe, events, event_is("device_down", device="pdu-a1"), 6, mark)
        rnd.took("pdu-a1 stopped -> `device_down` event", stopped, at)
        at = await site_plan_state(site, "a1", "faulted", mark)
        rnd.took("ECRS -> a1 (PDU dead) `faulted` in the plan", sent, at)
        at = await ack_arrival(site, msg_id, "shortfall", mark, 8.0)
        rnd.took("ECRS -> `shortfall` ack (a1 cannot be stopped)", sent, at)
        rnd.check(site.alive(), "daemon died")
        rnd.check(site.protected_writes() == 0, "a protected PDU was written")


async def site_plan_state(site: LiveSite, pool: str, state: str, since: int) -> float:
    return await arrival(
        site.probe,
        f"{site.prefix}/plan",
        lambda p: p["pools"][pool]["state"] == state,
        8.0,
        since,
        f"{pool} `{state}` in the plan",
    )


# -- an outlet pool's PDU down while its target changes, then back -----------------------------


async def pdu_back(env: Env, rnd: Round, n: int) -> None:
    """pdu-px (the outlet-switched pool px) stops answering; the price rises so that px must
    curtail; the PDU comes back: its outlets must be switched off then, and on again later."""
    async with site_round(env, rnd) as site:
        sim = site.sim
        px = sim.pdus["pdu-px"]
        await running(site)
        events = f"{site.prefix}/events"
        mark = site.probe.mark()
        stopped = time.monotonic()
        await sim.stop_device("pdu-px")
        at = await arrival(site.probe, events, event_is("device_down", device="pdu-px"), 10, mark)
        rnd.took("pdu-px stopped -> `device_down` event", stopped, at)
        await site.price(60.0)  # above px's band (51.0 + 5), below a3's (68.1 - 5)
        await site_plan_state(site, "px", "faulted", mark)
        await asyncio.sleep(1.0)
        rnd.check(all(px.outlets_on), "px outlets changed while its PDU was down")
        mark = site.probe.mark()
        started = time.monotonic()
        await sim.start_device("pdu-px")
        at = await arrival(site.probe, events, event_is("device_up", device="pdu-px"), 15, mark)
        rnd.took("pdu-px back -> `device_up` event", started, at)
        at = await until(lambda: not any(px.outlets_on), 15, "px outlets off once the PDU is back")
        rnd.took("pdu-px back -> its outlets as the plan says (off)", started, at)
        at = await arrival(
            site.probe,
            f"{site.prefix}/plan",
            lambda p: p["pools"]["px"]["state"] != "faulted",
            8,
            mark,
            "px no longer `faulted`",
        )
        rnd.took("pdu-px back -> px no longer `faulted` in the plan", started, at)
        state = site.last(f"{site.prefix}/plan")["pools"]["px"]["state"]
        rnd.notes.append(f"px's plan state once its PDU is back and its outlets off: `{state}`")
        rnd.check(sim.agents["a3"].power_kw == 3000.0, "a3 curtailed too (60 $/MWh is in its band)")
        sent = time.monotonic()
        await site.price(20.0)
        at = await until(lambda: all(px.outlets_on), 5, "px outlets on again")
        rnd.took("price back to 20 -> px outlets on again", sent, at)


# -- a stuck agent's pool cut, then given room --------------------------------------------------


async def stuck_cut_then_room(env: Env, rnd: Round, n: int) -> None:
    """Agent a1 ignores every command. A `curtail` override cuts its PDU (escalation); then a
    `limit` of 1000 kW leaves room for mining. Watched for 8 s: how often pdu-a1 is switched
    and how long mining stays above the limit."""
    limit_kw, watch_s = 1000.0, 8.0
    async with site_round(env, rnd, stuck=frozenset({"a1"})) as site:
        sim = site.sim
        outlets = sim.pdus["pdu-a1"].outlets_on
        await running(site)
        await site.send_override(override("curtail", ttl_s=300))
        await until(lambda: sim.mining_kw() == 0.0, 5, "all mining off under `curtail`")
        await asyncio.sleep(1.0)
        writes_before = len(sim.pdus["pdu-a1"].coil_write_requests)
        async with (
            Sampler(lambda: float(sum(outlets))) as energised,
            Sampler(sim.mining_kw) as mining,
        ):
            sent = time.monotonic()
            await site.send_override(override("limit", ttl_s=300, limit_kw=limit_kw))
            await asyncio.sleep(watch_s)
        over = [s for s in mining.samples if s[1] > at_most(limit_kw)]
        share = len(over) / len(mining.samples)
        switches = len(sim.pdus["pdu-a1"].coil_write_requests) - writes_before
        rnd.times["outlet writes to pdu-a1 in 8 s (count)"] = float(switches)
        rnd.times["share of 8 s with mining over the limit (%)"] = 100.0 * share
        rnd.times["peak mining over the 1000 kW limit (kW)"] = max(0.0, mining.peak()[1] - limit_kw)
        pairs = zip(energised.samples, energised.samples[1:], strict=False)
        ons = [at for (_, prev), (at, now) in pairs if now > 0 and prev == 0]
        if ons:
            rnd.took("`limit` -> pdu-a1 outlets back on (cut lifted)", sent, ons[0])
        rnd.check(
            share < 0.05,
            f"mining over the {limit_kw:.0f} kW override limit {100 * share:.0f}% of {watch_s:g} s "
            f"(peak {mining.peak()[1]:.0f} kW); pdu-a1 written {switches} times",
        )


# -- a pool agent rebooting at full power --------------------------------------------------------


async def agent_reboot(env: Env, rnd: Round, n: int) -> None:
    """30 MW POI, GPU tenant at 26 MW: 2.5 MW for mining, a3 curtailed and confirmed. a3's
    miners reboot at full power (3 MW) and ignore commands for 4 s."""

    def busy_tenant(sim: SimSite) -> None:
        sim.gpu_kw["tenant-a"] = 26000.0

    async with site_round(env, rnd, setup=busy_tenant) as site:
        a3 = site.sim.agents["a3"]
        await site.price(20.0)
        await site.plan(
            lambda p: p["pools"]["a3"]["state"] == "curtailed" and p["pools"]["a1"]["target_kw"] > 0
        )
        await eventually(lambda: site.sim.mining_kw() <= at_most(2500) and a3.power_kw == 0, 5)
        await asyncio.sleep(0.5)
        seq_before = a3.applied_seq
        mark = site.probe.mark()
        async with Sampler(site.sim.site_kw) as site_kw:
            rebooted = time.monotonic()
            a3.reboot_at_full_power(deaf_s=4.0)
            at = await arrival(
                site.probe, f"{site.prefix}/pools/a3/cmd", lambda d: d["seq"] > seq_before, 3, mark
            )
            rnd.took("reboot -> a3 re-commanded (new cmd)", rebooted, at)
            outlets = site.sim.pdus["pdu-a3"].outlets_on
            at = await until(lambda: not any(outlets), 4, "a3 PDU cut")
            rnd.took("reboot -> a3 PDU cut (escalation)", rebooted, at)
            await asyncio.sleep(1.0)
        above = [at for at, kw in site_kw.samples if at >= rebooted and kw > POI_KW]
        if above:
            back = next((at for at, kw in site_kw.samples if at > above[-1] and kw <= POI_KW), None)
            if back is not None:
                rnd.took("reboot -> site back under its POI limit", rebooted, back)
        else:
            rnd.times["reboot -> site back under its POI limit"] = 0.0
        over_s = site_kw.longest_above(POI_KW)
        rnd.times["site above its POI limit (s, longest)"] = over_s
        rnd.check(over_s <= CONFIRM_TIMEOUT_S / 2, f"site above its POI for {over_s:.2f} s")
        rnd.check(site_kw.samples[-1][1] <= POI_KW, "site still above its POI at the end")
        rnd.check(site.protected_writes() == 0, "a protected PDU was written")


# -- a silent agent -------------------------------------------------------------------------------


async def silent_agent(env: Env, rnd: Round, n: int) -> None:
    """pool_stale_s = 2: a3 (1000 kW at part load under a 9 MW CLR) stops reporting while its
    miners keep drawing; later the agent comes back."""
    cap_kw = 9000.0
    async with site_round(env, rnd, control={"pool_stale_s": 2.0}) as site:
        a3 = site.sim.agents["a3"]
        await running(site)
        await site.dispatch(clr(f"C{n}", cap_kw / 1000))
        await until(
            lambda: abs(a3.power_kw - 1000) < 1 and site.sim.mining_kw() <= at_most(cap_kw),
            5,
            "a3 at part load under the CLR",
        )
        mark = site.probe.mark()
        async with Sampler(site.sim.mining_kw) as mining:
            silenced = time.monotonic()
            a3.go_silent()
            at = await site_plan_state(site, "a3", "faulted", mark)
            rnd.took("agent silent -> a3 `faulted` in the plan", silenced, at)
            await asyncio.sleep(1.0)
            mark = site.probe.mark()
            back = time.monotonic()
            a3.come_back()
            at = await arrival(
                site.probe,
                f"{site.prefix}/plan",
                lambda p: p["pools"]["a3"]["state"] not in ("faulted", "escalated"),
                8,
                mark,
                "a3 no longer faulted",
            )
            rnd.took("agent back -> a3 no longer `faulted` in the plan", back, at)
            await asyncio.sleep(0.5)
        rnd.check(mining.peak()[1] <= at_most(cap_kw), f"mining peaked {mining.peak()[1]:.0f} kW")
        rnd.check(site.sim.pool_power_kw()["px"] == 0.0, "px raised into the silent pool's room")


# -- the site meter stale -------------------------------------------------------------------------


async def site_meter_stale(env: Env, rnd: Round, n: int) -> None:
    """meter_stale_s = 1: the site meter stops answering under a 7 MW CLR; the CLR is recalled
    (room for 4 MW more) while it is stale; then the meter answers again."""
    async with site_round(env, rnd, control={"meter_stale_s": 1.0}) as site:
        status = f"{site.prefix}/status"
        await site.price(20.0)
        await site.dispatch(clr(f"C{n}", 7.0))
        await until(lambda: abs(site.sim.mining_kw() - 7000) < 2, 5, "mining at the 7 MW CLR")
        mark = site.probe.mark()
        stopped = time.monotonic()
        await site.sim.stop_device("poi")
        at = await arrival(
            site.probe, status, lambda d: "site_meter_stale" in d.get("failsafe", []), 5, mark
        )
        rnd.took("site meter stopped -> `site_meter_stale` failsafe (status)", stopped, at)
        async with Sampler(site.sim.mining_kw) as mining:
            await site.dispatch(recall(f"C{n}"))
            await asyncio.sleep(1.5)
        rnd.check(mining.peak()[1] <= at_most(7000), "a pool was raised with the site meter stale")
        mark = site.probe.mark()
        started = time.monotonic()
        await site.sim.start_device("poi")
        at = await arrival(site.probe, status, lambda d: d["state"] == "online", 5, mark)
        rnd.took("site meter back -> failsafe cleared (status `online`)", started, at)
        at = await until(lambda: full(site), 5, "fleet raised after the meter is back")
        rnd.took("site meter back -> the held 4 MW raised", started, at)
