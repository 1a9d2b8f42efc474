"""Fault scenarios of what reaches the daemon from outside: messages no clock can hold (a poison
instruction with deadline_s 1e308, a price record for year 9999, a seq of 2**70) and a SIGHUP
whose config names an unreadable hmac_key_file. One daemon per scenario, one message (or
signal) per round, since the daemon must live through all of them."""

from __future__ import annotations

import asyncio
import json
import time

from bench.faults_common import (
    Env,
    Round,
    ack_arrival,
    arrival,
    db_of,
    event_is,
    failed,
    site_round,
    stored_audit,
    until,
)
from tests.integration.documents import ecrs, edit_toml, iso_at, override
from tests.integration.faults import MetricsView
from tests.integration.site import FLEET_KW, LiveSite

KEY = b"bench-fault-key"
FAR_FUTURE = {"deliveryDate": "9999-12-31", "deliveryHour": 24, "deliveryInterval": 4,
              "settlementPoint": "HB_WEST", "settlementPointType": "HU",
              "settlementPointPrice": 30.0, "DSTFlag": False}  # fmt: skip
FEEDS = ("dispatch", "price", "pool_state")


async def poison_messages(env: Env, rounds: int) -> list[Round]:
    out = [Round() for _ in range(rounds)]
    last = out[-1]  # the daemon-wide checks are recorded with the last round
    try:
        async with site_round(env, last, notify=True, watchdog_s=1.0) as site:
            await site.price(20.0)
            await until(lambda: abs(site.sim.mining_kw() - FLEET_KW) < 1, 5, "fleet running")
            before = await site.metrics()
            for n, rnd in enumerate(out):
                await one_poison(site, rnd, f"POISON-{n}")
            await after_poison(site, last, rounds, before)
        ids = {a.get("id") for a in stored_audit(db_of(site)) if a["event"] == "rejected"}
        for n, rnd in enumerate(out):
            rnd.check(f"POISON-{n}" in ids, f"no `rejected` record of POISON-{n} in the store")
    except Exception as exc:  # noqa: BLE001 - a failed run is a finding; the bench goes on
        failed(last, exc)
    return out


async def one_poison(site: LiveSite, rnd: Round, msg_id: str) -> None:
    mark = site.probe.mark()
    sent = time.monotonic()
    await site.dispatch(ecrs(msg_id, 1.0, deadline_s=1e308))
    await site.probe.publish(f"{site.prefix}-ercot/prices/rt", json.dumps(FAR_FUTURE))
    huge_seq = {"seq": 2**70, "power_kw": 3000.0, "available_kw": 3000.0, "online": True,
                "at": iso_at(time.time())}  # fmt: skip
    await site.probe.publish(f"{site.prefix}/pools/a1/state", json.dumps(huge_seq))
    rnd.took("deadline_s 1e308 published -> `rejected` ack", sent,
             await ack_arrival(site, msg_id, "rejected", mark))  # fmt: skip
    await asyncio.sleep(0.2)
    rnd.check(site.alive(), "daemon died")


async def after_poison(site: LiveSite, rnd: Round, rounds: int, before: MetricsView) -> None:
    assert site.notify is not None
    await asyncio.sleep(0.5)
    rnd.check(site.alive(), f"curtaild died:\n{site.log()[-2000:]}")
    after = await site.metrics()
    name = "curtaild_messages_rejected_total"
    for feed in FEEDS:
        got = after.get(name, feed=feed) - before.get(name, feed=feed)
        rnd.check(got == rounds, f"{feed}: {got:g} rejections counted for {rounds} messages")
    rnd.check(site.last(f"{site.prefix}/status")["state"] == "online", "status not online")
    watch = site.notify.mark()
    await site.notify.wait_for("WATCHDOG=1", 2.0, since=watch)
    sent = time.monotonic()
    await site.price(500.0)  # the loop still acts: every pool curtails
    at = await until(lambda: site.sim.mining_kw() == 0.0, 5, "mining off at 500 $/MWh")
    rnd.took("after the poison: price 500 published -> every pool off", sent, at)


async def reload_unreadable_key(env: Env, rounds: int) -> list[Round]:
    out = [Round() for _ in range(rounds)]
    last = out[-1]
    try:
        await reload_rounds(env, out)
    except Exception as exc:  # noqa: BLE001 - a failed run is a finding; the bench goes on
        failed(last, exc)
    return out


async def reload_rounds(env: Env, out: list[Round]) -> None:
    last = out[-1]
    key_file = env.scratch() / "override.key"
    key_file.write_bytes(KEY + b"\n")
    section = {"hmac_key_file": str(key_file)}
    async with site_round(env, last, notify=True, override=section) as site:
        assert site.notify is not None
        await site.price(20.0)
        await until(lambda: abs(site.sim.mining_kw() - FLEET_KW) < 1, 5, "fleet running")
        site.config_path.write_text(edit_toml(site.config_path.read_text(), {
            "override.hmac_key_file": str(key_file.parent / "no-such.key"),
            "site.margin_kw": 2500.0,  # must not apply either: the file is refused whole
        }))  # fmt: skip
        for rnd in out:
            mark, notified = site.probe.mark(), site.notify.mark()
            sent = time.monotonic()
            site.reload()
            refused = await arrival(
                site.probe, f"{site.prefix}/events", event_is("reload_refused"), 3, mark
            )
            rnd.took("SIGHUP -> `reload_refused` event", sent, refused)
            ready = await site.notify.wait_for("READY=1", 3.0, since=notified)
            rnd.took("SIGHUP -> READY=1 again", sent, ready)
            rnd.check(site.alive(), "daemon died on reload")
            await asyncio.sleep(0.3)
        metrics = await site.metrics()
        cap_w = metrics.get("curtaild_mining_cap_watts")
        last.check(cap_w == 18.5e6, f"cap moved to {cap_w} W: part of the new config applied")
        mark = site.probe.mark()
        sent = time.monotonic()
        await site.send_override(override("limit", ttl_s=60, key=KEY, limit_kw=4000))
        at = await arrival(
            site.probe,
            f"{site.prefix}/override/state",
            lambda d: d["active"] or d["last_error"],
            5,
            mark,
        )
        state = site.last(f"{site.prefix}/override/state")
        last.check(state["active"] and state["last_error"] is None, f"old key refused: {state}")
        last.took("after the refusals: override signed with the running key -> in force", sent, at)
    refusals = [a for a in stored_audit(db_of(site)) if a["event"] == "reload_refused"]
    last.check(len(refusals) == len(out), f"{len(refusals)} reload_refused records stored")
