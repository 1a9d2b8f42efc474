"""Nothing kills the loop (I10, CONTRACT 7 Faults inside the daemon), and every change is in the
state store before its commands go out. Real loop, inputs, applier, observer, metrics and
SQLite store; MQTT publishes are recorded, the clock moves by hand."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.store import StateStore
from controller.core import decide as core_decide
from controller.core.clamp import PlanViolation
from controller.core.site import compile_site
from controller.core.walk import walk
from controller.runtime import loop as loop_module
from controller.runtime import payloads
from tests.unit.harness import make_config
from tests.unit.loop_rig import Rig, make_rig

ISO_NOW = "2023-11-14T22:13:20+00:00"  # the rig's clock


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(make_config(), tmp_path)
    r.message(r.config.feeds.price_topic.replace("#", "rt"), _sced(20.0))
    r.telemetry({"eff": 6000.0, "mid": 6000.0, "old": 6000.0})
    await r.loop.step()
    try:
        yield r
    finally:
        await r.store.close()


def _sced(price: float) -> dict[str, Any]:
    return {"SCEDTimestamp": "2023-11-14T16:13:20", "repeatHourFlag": False,
            "settlementPoint": "HB_WEST", "LMP": price}  # fmt: skip


def _ecrs(msg_id: str, mw: float) -> dict[str, Any]:
    return {"id": msg_id, "type": "ECRS", "mw": mw, "notified_at": ISO_NOW}


async def test_a_poison_instruction_is_rejected_and_the_loop_goes_on(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = core_decide.decide

    def fragile(snap: Any, state: Any, now: float, site: Any) -> Any:
        if any(m.id == "POISON" for m in snap.dispatch_inbox):
            raise ZeroDivisionError("a bug the poison message reaches")
        return real(snap, state, now, site)

    monkeypatch.setattr(loop_module, "decide", fragile)
    rig.message(rig.config.feeds.dispatch_topic, _ecrs("POISON", 1.0))
    rig.clock.now += 1
    decision = await rig.loop.step()
    assert decision is not None  # decided again without it
    (ack,) = [a for a in rig.json_on("dispatch/ack") if a["id"] == "POISON"]
    assert (ack["status"], ack["reason"]) == ("rejected", "internal_error")
    assert rig.counter("curtaild_internal_errors_total", where="decision") == 1
    assert rig.inputs.dispatch_inbox == []  # taken, answered: not retried forever
    rig.message(rig.config.feeds.dispatch_topic, _ecrs("VDI-1", 6.0))
    rig.clock.now += 1
    await rig.loop.step()
    assert [a["status"] for a in rig.json_on("dispatch/ack") if a["id"] == "VDI-1"] == ["accepted"]


async def test_decisions_failing_for_confirm_timeout_curtail_every_pool(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("decide() is broken")

    monkeypatch.setattr(loop_module, "decide", broken)
    before = {name: rig.cmds(name) for name in ("eff", "mid", "old")}
    for _ in range(5):  # failing since the first: 4 s, not yet confirm_timeout_s (5 s)
        rig.clock.now += 1
        assert await rig.loop.step() is None
    assert {name: rig.cmds(name) for name in before} == before  # nothing sent yet
    status = rig.json_on("status")[-1]
    assert (status["state"], status["failsafe"]) == ("failsafe", ["decision_budget"])
    rig.clock.now += 1
    await rig.loop.step()
    for name in before:
        assert rig.cmds(name)[-1]["target_kw"] == 0  # by the last good plan's drivers
    assert rig.counter("curtaild_internal_errors_total", where="decision") == 6
    assert rig.counter("curtaild_decisions_over_budget_total") == 6  # each a strike
    rig.clock.now += 1
    await rig.loop.step()  # still failing: commanded once, not again and again
    assert len(rig.cmds("eff")) == len(before["eff"]) + 1
    monkeypatch.undo()
    rig.follow()
    rig.clock.now += 1
    decision = await rig.loop.step()  # decide() works again and takes it from there
    assert decision is not None
    assert decision.plan.pools["eff"].seq > rig.cmds("eff")[-1]["seq"] - 1


async def test_a_decision_over_the_configured_budget_is_counted_for_the_alert(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The over-budget alert reads this counter, so it follows `decision_budget_ms` (1000 here)
    whatever the histogram's bucket bounds are."""
    real = core_decide.decide
    took_s = 0.5

    def slow(snap: Any, state: Any, now: float, site: Any) -> Any:
        rig.clock.now += took_s  # the injected clock is the loop's stopwatch
        return real(snap, state, now, site)

    monkeypatch.setattr(loop_module, "decide", slow)
    rig.clock.now += 1
    assert await rig.loop.step() is not None
    assert rig.counter("curtaild_decisions_over_budget_total") == 0  # 500 ms: within 1000
    took_s = 1.5
    rig.clock.now += 1
    assert await rig.loop.step() is not None
    assert rig.counter("curtaild_decisions_over_budget_total") == 1


async def test_a_plan_the_clamp_refuses_is_a_failed_decision(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk gone wrong (a pool commanded far above its max_kw and the cap): the clamp at the
    end of decide() raises PlanViolation, and the loop handles it as any decide() that raised:
    nothing of that plan is sent, the failsafe shows, every pool goes to 0 after
    confirm_timeout_s, and a sound decision takes it from there."""

    def overshoot(pools: Any, snap: Any, w: Any) -> Any:
        result = walk(pools, snap, w)
        old = result.pools["old"]
        wild = replace(old, target_kw=1e6, seq=old.seq + 1, target_at=w.confirm.now)
        result.pools = {**result.pools, "old": wild}
        return result

    monkeypatch.setattr(core_decide, "walk", overshoot)
    site = compile_site(rig.config)
    with pytest.raises(PlanViolation, match=re.escape("old: target 1000000.0 kW outside 0..6000")):
        core_decide.decide(rig.inputs.snapshot(False), rig.loop.state, rig.clock.now + 1, site)
    before = rig.cmds("old")
    for _ in range(5):
        rig.clock.now += 1
        assert await rig.loop.step() is None
    assert rig.cmds("old") == before  # the refused plan never reached a device
    assert rig.counter("curtaild_internal_errors_total", where="decision") == 5
    status = rig.json_on("status")[-1]
    assert (status["state"], status["failsafe"]) == ("failsafe", ["decision_budget"])
    rig.clock.now += 1
    assert await rig.loop.step() is None
    assert [rig.cmds(name)[-1]["target_kw"] for name in ("eff", "mid", "old")] == [0, 0, 0]
    monkeypatch.undo()
    rig.follow()
    rig.clock.now += 1
    decision = await rig.loop.step()
    assert decision is not None
    assert all(ps.target_kw <= 6000.0 for ps in decision.plan.pools.values())


async def test_a_failing_store_holds_no_command_back_and_keeps_the_records(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def disk_full(_: Any) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(rig.store, "write", disk_full)
    rig.message(rig.config.feeds.dispatch_topic, _ecrs("VDI-2", 6.0))
    rig.clock.now += 1
    await rig.loop.step()
    assert rig.cmds("old")[-1]["target_kw"] == 0  # the deployment went out regardless
    assert rig.counter("curtaild_internal_errors_total", where="store") == 1
    monkeypatch.undo()
    rig.clock.now += 1
    rig.follow()
    await rig.loop.step()
    with StateStore.open(rig.store.path) as store:
        kinds = [r.kind for r in store.audit()]
        stored = store.load()
    assert "dispatch" in kinds and "ack" in kinds  # kept back, written by the next success
    assert "id:VDI-2" in stored.obligations


async def test_an_event_that_cannot_be_built_is_contained(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unprintable(*_: Any, **__: Any) -> bytes:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(payloads, "event", unprintable)
    rig.message(rig.config.feeds.dispatch_topic, _ecrs("VDI-3", 6.0))
    rig.clock.now += 1
    decision = await rig.loop.step()
    assert decision is not None
    assert rig.cmds("old")[-1]["target_kw"] == 0
    assert rig.counter("curtaild_internal_errors_total", where="events") >= 1


async def test_the_change_is_in_the_store_before_its_command_goes_out(rig: Rig) -> None:
    seen_in_store: list[bool] = []
    publish = rig.wire.send

    def checking(topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        if topic.endswith("/cmd"):
            with StateStore.open(rig.store.path) as store:
                seen_in_store.append("id:VDI-4" in store.load().obligations)
        return publish(topic, payload, qos, retain)

    rig.wire.hook = checking
    rig.message(rig.config.feeds.dispatch_topic, _ecrs("VDI-4", 6.0))
    rig.clock.now += 1
    await rig.loop.step()
    assert seen_in_store and all(seen_in_store)


async def test_a_hung_disk_delays_commands_by_half_a_second_at_most(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = rig.store.write
    released = asyncio.Event()

    async def hung(delta: Any) -> None:
        await released.wait()
        await write(delta)

    monkeypatch.setattr(rig.store, "write", hung)
    rig.message(rig.config.feeds.dispatch_topic, _ecrs("VDI-5", 6.0))
    rig.clock.now += 1
    started = time.monotonic()
    await rig.loop.step()
    assert time.monotonic() - started < 2.0  # the wait is 0.5 s; generous for a busy CI
    assert rig.cmds("old")[-1]["target_kw"] == 0
    assert rig.loop.stats.slow_writes == 1
    released.set()
    for _ in range(100):  # the shielded write completes once the disk answers
        await asyncio.sleep(0.01)
        with StateStore.open(rig.store.path) as store:
            if "id:VDI-5" in store.load().obligations:
                break
    else:
        raise AssertionError("the late write never landed")


async def test_a_record_kept_outside_a_decision_is_in_the_store_at_once(rig: Rig) -> None:
    rig.inputs.on_message(rig.config.feeds.dispatch_topic, b"{not json", False)  # rejected
    # No decision in between: the flush writes it. Its fsync may take a while on a loaded
    # machine, so wait for it (up to 5 s) rather than for a fixed time.
    kinds: list[str] = []
    for _ in range(100):
        await asyncio.sleep(0.05)
        with StateStore.open(rig.store.path) as store:
            kinds = [r.kind for r in store.audit()]
        if "rejected" in kinds:
            break
    assert "rejected" in kinds


async def test_what_a_failed_write_did_not_keep_goes_with_the_next_one(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def disk_full(_: Any) -> None:
        raise OSError("No space left on device")

    real = rig.store.write
    monkeypatch.setattr(rig.store, "write", disk_full)
    rig.message(rig.config.feeds.dispatch_topic, _ecrs("VDI-6", 6.0))
    rig.clock.now += 1
    await rig.loop.step()  # accepted while the disk is full
    monkeypatch.setattr(rig.store, "write", real)
    rig.clock.now += 1
    await rig.loop.step()  # the disk has room again; this decision changes nothing itself
    with StateStore.open(rig.store.path) as store:
        assert "id:VDI-6" in store.load().obligations


async def test_the_decision_record_says_why_the_cap_is_what_it_is(rig: Rig) -> None:
    rig.message(rig.config.feeds.dispatch_topic, _ecrs("VDI-R", 6.0))
    rig.clock.now += 1
    await rig.loop.step()
    records = [e for e in rig.json_on("events") if e.get("event") == "decision"]
    reasons = records[-1]["reasons"]
    dispatch = [r for r in reasons if r["stage"] == "dispatch"]
    assert dispatch, reasons
    assert dispatch[0]["cap_kw"] == records[-1]["mining_cap_kw"]
    assert "VDI-R" in dispatch[0]["detail"]
