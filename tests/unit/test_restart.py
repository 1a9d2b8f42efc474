"""A restart continues from the state store (I6, CONTRACT 7 State store): obligations with
their baselines, the override, nonces, seq, targets and dwell, and the frequency trip. The
daemon's own loop and store; the 'restart' is a second rig on the same state directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.adapters.store import DB_NAME, StateStore, StoreDelta, StoreError
from controller.clock import FakeClock
from controller.core.state import NEVER
from controller.model import Reading
from controller.runtime.startup import open_store
from tests.unit.harness import make_config
from tests.unit.loop_rig import Rig, make_rig

T = 1_700_000_000.0
ISO = "2023-11-14T22:13:20+00:00"


def _price(rig: Rig, usd: float) -> None:
    rig.message("ercot/prices/rt", {"SCEDTimestamp": "2023-11-14T16:13:20",
                "repeatHourFlag": False, "settlementPoint": "HB_WEST", "LMP": usd})  # fmt: skip


async def _running(tmp_path: Path, **sections: Any) -> Rig:
    control = {"state_dir": str(tmp_path), **sections.pop("control", {})}
    rig = await make_rig(make_config(control=control, **sections), tmp_path, FakeClock(T))
    _price(rig, 20.0)
    rig.telemetry({"eff": 6000.0, "mid": 6000.0, "old": 6000.0})
    await rig.loop.step()
    for _ in range(2):
        rig.clock.now += 1
        rig.follow()
        await rig.loop.step()
    return rig


async def _restart(rig: Rig, after_s: float = 2.0) -> Rig:
    """kill -9: nothing is closed or flushed; a new process opens the same store."""
    clock = FakeClock(rig.clock.now + after_s)
    again = await make_rig(rig.config, Path(rig.store.path).parent, clock)
    await again.store.close()
    await open_store(rig.config, again.loop, again.inputs)
    assert again.loop.store is not None
    again.store = again.loop.store
    return again


async def test_a_deployment_survives_a_restart_with_its_baseline(tmp_path: Path) -> None:
    rig = await _running(tmp_path)
    rig.message(rig.config.feeds.dispatch_topic,
                {"id": "VDI-1", "type": "ECRS", "mw": 6.0, "notified_at": ISO})  # fmt: skip
    rig.clock.now += 1
    await rig.loop.step()
    again = await _restart(rig)
    (ob,) = again.loop.state.obligations
    assert (ob.id, ob.instruction.mining_kw_at_receipt, ob.cap_kw) == ("VDI-1", 18000, 12000)
    _price(again, -20.0)  # cheap: still no raise before RECALL (I5)
    again.telemetry({"eff": 6000.0, "mid": 6000.0, "old": 0.0}, {"eff": 3, "mid": 3, "old": 4})
    for _ in range(3):
        again.clock.now += 1
        decision = await again.loop.step()
        assert decision is not None
        assert decision.plan.mining_target_kw <= 12000 + 1e-6
        again.follow()
    await rig.store.close()
    await again.store.close()


async def test_an_award_survives_a_restart_and_still_holds_its_floor(tmp_path: Path) -> None:
    rig = await _running(tmp_path)
    end = "2023-11-14T23:13:20+00:00"
    rig.message(rig.config.feeds.dispatch_topic,
                {"id": "AS-1", "type": "AWARD", "product": "ECRS", "mw": 4.0,
                 "notified_at": ISO, "start": ISO, "end": end})  # fmt: skip
    rig.clock.now += 1
    await rig.loop.step()
    (ob,) = rig.loop.state.obligations
    assert (ob.id, ob.status, ob.floor_kw) == ("AS-1", "complied", 4000.0)
    again = await _restart(rig)
    (ob,) = again.loop.state.obligations
    assert (ob.id, ob.instruction.product, ob.status, ob.floor_kw) == (
        "AS-1", "ECRS", "complied", 4000.0,
    )  # fmt: skip
    _price(again, 5000.0)  # a spike after the restart: the award still holds 4 MW
    again.telemetry({"eff": 6000.0, "mid": 6000.0, "old": 6000.0}, {"eff": 3, "mid": 3, "old": 3})
    decision = None
    for _ in range(3):
        again.clock.now += 1
        decision = await again.loop.step()
        again.follow()
    assert decision is not None
    assert decision.plan.mining_target_kw == pytest.approx(4000.0)
    assert decision.plan.pools["eff"].reason == "dispatch:AS-1"
    await rig.store.close()
    await again.store.close()


async def test_override_trip_dwell_and_nonces_survive(tmp_path: Path) -> None:
    rig = await _running(tmp_path, economics={"min_curtail_s": 600, "min_run_s": 0})
    _price(rig, 100.0)  # old (68 $/MWh) curtails on price: its dwell starts
    rig.clock.now += 1
    await rig.loop.step()
    old_changed_at = rig.loop.state.pools["old"].changed_at
    rig.inputs.frequency_hz = Reading(59.5, rig.clock.now)  # mid is ufr: tripped
    override = {"mode": "limit", "limit_kw": 9000, "ttl_s": 3600, "operator": "jdoe",
                "reason": "breaker work", "issued_at": ISO, "nonce": "n-1"}  # fmt: skip
    rig.message(f"{rig.prefix}/override/set", override)
    rig.clock.now += 1
    await rig.loop.step()
    assert rig.loop.state.trip_active
    again = await _restart(rig)
    state = again.loop.state
    assert state.override is not None and state.override.operator == "jdoe"
    assert state.trip_active
    old = state.pools["old"]
    assert (old.on, old.changed_at, old.target_at) == (False, old_changed_at, NEVER)
    assert state.pools["mid"].seq == rig.loop.state.pools["mid"].seq  # commanded: tripped
    assert "eff" not in state.pools  # never commanded: seeded from telemetry again
    again.message(f"{again.prefix}/override/set", override)  # replayed after the restart
    assert again.inputs.override_last.error is not None
    assert again.inputs.override_last.error.startswith("replayed_nonce")
    await rig.store.close()
    await again.store.close()


async def test_nothing_is_commanded_at_restart_unless_the_decision_changes_it(
    tmp_path: Path,
) -> None:
    rig = await _running(tmp_path)
    sent_before = len(rig.sent)
    seqs = {n: ps.seq for n, ps in rig.loop.state.pools.items()}
    again = await _restart(rig)
    _price(again, 20.0)
    again.telemetry({"eff": 6000.0, "mid": 6000.0, "old": 6000.0}, seqs)
    await again.loop.step()
    assert not [t for t, _, _ in again.sent if t.endswith("/cmd")]
    assert all(ps.state == "running" for ps in again.loop.state.pools.values())
    assert len(rig.sent) == sent_before
    await rig.store.close()
    await again.store.close()


async def test_a_store_row_this_version_cannot_read_stops_the_start(tmp_path: Path) -> None:
    rig = await _running(tmp_path)
    await rig.store.close()
    with StateStore.open(tmp_path / DB_NAME) as store:  # valid JSON, not an obligation
        store.write(StoreDelta(obligations={"id:X": json.dumps({"id": "X"})}))
    again = await make_rig(rig.config, tmp_path, FakeClock(T + 10))
    await again.store.close()
    with pytest.raises(StoreError, match=str(tmp_path / DB_NAME)):
        await open_store(rig.config, again.loop, again.inputs)


async def test_a_broker_that_lost_the_retained_cmds_gets_the_stored_ones_back(
    tmp_path: Path,
) -> None:
    rig = await _running(tmp_path)
    _price(rig, 80.0)  # old (68 $/MWh) curtails: a cmd of ours; eff and mid never get one
    rig.clock.now += 1
    await rig.loop.step()
    old = rig.loop.state.pools["old"]
    again = await _restart(rig)
    again.sent.clear()
    again.loop.republish_retained()  # connected before the first decision, or a broker restart
    (cmd,) = again.cmds("old")
    assert (cmd["seq"], cmd["target_kw"]) == (old.seq, 0.0)
    assert again.cmds("eff") == again.cmds("mid") == []  # nothing of ours to repeat
    await rig.store.close()
    await again.store.close()
