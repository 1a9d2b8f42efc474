"""Fault scenarios that need no broker: decide() failing on every decision (the daemon's own loop,
inputs, applier, observer and SQLite store in this process, tests/unit/loop_rig.py, on the wall
clock), and a corrupt state store at start (the real `curtaild run`, timed to its exit)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
from typing import Any

from bench.faults_common import Env, Round, stored_audit, until
from controller.adapters.store import DB_NAME, AuditRecord, StateStore
from controller.clock import FakeClock
from controller.runtime import loop as loop_module
from tests.integration.documents import sced
from tests.integration.live import spawn_daemon
from tests.integration.site import site_data, write_config
from tests.unit.harness import make_config
from tests.unit.loop_rig import Rig, make_rig
from tests.unit.store_support import T0, full_delta

POOLS = ("eff", "mid", "old")  # tests.unit.harness.make_config's pools, all MQTT


class WallClock(FakeClock):
    """The rig's clock, following the wall clock: `now` (which the rig reads) is time.time()."""

    @property
    def now(self) -> float:
        return time.time()

    @now.setter
    def now(self, value: float) -> None:
        pass  # FakeClock.__init__ sets it; the wall clock cannot be moved


def broken_decide(*_: Any) -> Any:
    raise RuntimeError("decide() is broken (bench_faults)")


async def decisions_failing(env: Env, rnd: Round, n: int) -> None:
    """decide() raises on every call from a steady state (tick 0.2 s, confirm_timeout_s 1 s)
    until it is put back; times on the rig's recorded publishes (status, pool cmds)."""
    tmp = env.scratch()
    config = make_config(control={"confirm_timeout_s": 1.0, "tick_s": 0.2, "state_dir": str(tmp)})
    rig = await make_rig(config, tmp, WallClock())
    rig.message(config.feeds.price_topic.replace("#", "rt"), json.loads(sced(20.0)))
    rig.telemetry(dict.fromkeys(POOLS, 6000.0))
    await rig.loop.step()
    tasks = [asyncio.create_task(rig.loop.run()), asyncio.create_task(follow(rig))]
    try:
        await asyncio.sleep(0.6)
        mark = len(rig.sent)
        real = getattr(loop_module, "decide")  # noqa: B009 - patched as test_loop_faults does
        setattr(loop_module, "decide", broken_decide)  # noqa: B010
        try:
            broke = time.monotonic()
            at = await until(lambda: failsafe(rig, mark) == ["decision_budget"], 3, "failsafe")
            rnd.took("decide() raising -> `decision_budget` failsafe (status)", broke, at)
            at = await until(lambda: all_zero(rig, mark), 5, "every pool commanded to 0")
            rnd.took("decide() raising -> every pool commanded to 0", broke, at)
            await asyncio.sleep(0.6)
            repeats = {p: len(cmds_since(rig, p, mark)) for p in POOLS}
            rnd.check(all(c == 1 for c in repeats.values()), f"cmds while failing: {repeats}")
        finally:
            setattr(loop_module, "decide", real)  # noqa: B010
        fixed, mark = time.monotonic(), len(rig.sent)
        at = await until(lambda: failsafe(rig, mark) == [], 3, "failsafe cleared")
        rnd.took("decide() back -> failsafe cleared (status)", fixed, at)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await rig.store.close()
    kinds = [a["event"] for a in stored_audit(tmp / DB_NAME)]
    rnd.check("curtail_all" in kinds, "no `curtail_all` record in the store")
    rnd.check("internal_error" in kinds, "no `internal_error` record in the store")


async def follow(rig: Rig) -> None:
    """The pools carry out their commands and the meters report, every 0.1 s."""
    while True:
        rig.follow()
        await asyncio.sleep(0.1)


def cmds_since(rig: Rig, pool: str, mark: int) -> list[Any]:
    topic = f"{rig.prefix}/pools/{pool}/cmd"
    return [json.loads(p) for t, p, _ in rig.sent[mark:] if t == topic]


def all_zero(rig: Rig, mark: int) -> bool:
    return all(any(c["target_kw"] == 0 for c in cmds_since(rig, p, mark)) for p in POOLS)


def failsafe(rig: Rig, mark: int) -> list[str] | None:
    """The failsafe list of the last status published since `mark` (None: no status yet)."""
    topic = f"{rig.prefix}/status"
    docs = [json.loads(p) for t, p, _ in rig.sent[mark:] if t == topic]
    return None if not docs else list(docs[-1].get("failsafe", []))


# -- the state store failing for a while (disk full), then back ----------------------------------


async def store_full(env: Env, rnd: Round, n: int) -> None:
    """Every store write fails (disk full) while an ECRS is accepted and complied; then writes
    succeed again. Is the deployment in the store, as a restarted daemon would read it?"""
    tmp = env.scratch()
    rig = await make_rig(make_config(control={"state_dir": str(tmp)}), tmp)
    try:
        rig.message(rig.config.feeds.price_topic.replace("#", "rt"), json.loads(sced(20.0)))
        rig.telemetry(dict.fromkeys(POOLS, 6000.0))
        await rig.loop.step()

        async def disk_full(_: Any) -> None:
            raise OSError(28, "No space left on device")

        setattr(rig.store, "write", disk_full)  # noqa: B010 - as test_loop_faults patches it
        msg_id = f"VDI-FULL-{n}"
        at = rig.clock.now
        notified = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at))
        rig.message(rig.config.feeds.dispatch_topic,
                    {"id": msg_id, "type": "ECRS", "mw": 6.0, "notified_at": notified})  # fmt: skip
        for _ in range(4):  # accepted, commanded, complied: all while the disk is full
            rig.clock.now += 1
            await rig.loop.step()
            rig.follow()
        acks = [a["status"] for a in rig.json_on("dispatch/ack") if a["id"] == msg_id]
        rnd.check(acks[:2] == ["accepted", "complied"], f"acks while the disk was full: {acks}")
        delattr(rig.store, "write")  # space again
        for _ in range(3):
            rig.clock.now += 1
            rig.follow()
            await rig.loop.step()
    finally:
        await rig.store.close()
    with StateStore.open(tmp / DB_NAME, create=False) as store:
        stored = store.load()
        audit = [json.loads(r.doc) for r in store.audit()]
    rnd.check(
        f"id:{msg_id}" in stored.obligations,
        "an ECRS accepted while the store was failing is still not in it after writes succeed "
        "again: a restart now would forget the deployment",
    )
    kept = {a["status"] for a in audit if a["event"] == "ack" and a.get("id") == msg_id}
    rnd.check(kept >= {"accepted", "complied"}, f"acks kept in the audit: {sorted(kept)}")


# -- a corrupt state store at start ---------------------------------------------------------------


async def corrupt_store(env: Env, rnd: Round, n: int, damage: str) -> None:
    """A store with state and 400 audit records, damaged (`page`: one page of the audit table
    zeroed; `garbage`: random bytes), then `curtaild run`: exit 1 naming the file, untouched."""
    tmp = env.scratch()
    db = tmp / "state" / DB_NAME
    delta = full_delta()
    delta.audit += [AuditRecord(T0 + i, "commands", json.dumps({"i": i, "pad": "x" * 200}))
                    for i in range(400)]  # fmt: skip
    with StateStore.open(db) as store:
        store.write(delta)
    if damage == "page":
        with db.open("r+b") as f:  # page 1 (the header) intact
            f.seek(4096 * 6)
            f.write(bytes(4096))
    else:
        db.write_bytes(os.urandom(3 * 4096))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    config_path, log_path = tmp / "curtaild.toml", tmp / "curtaild.log"
    data = site_data(env.broker.mqtt_config(), control={"state_dir": str(db.parent)})
    write_config(data, config_path)
    started = time.monotonic()
    proc = spawn_daemon(config_path, log_path)
    try:
        deadline = started + 20.0
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(OSError):
            proc.wait(5)
    rnd.took("start -> exit 1", started, ended)
    rnd.check(proc.returncode == 1, f"exit code {proc.returncode}, not 1")
    text = log_path.read_text(errors="replace")
    message = next((line for line in text.splitlines() if str(db) in line), "")
    rnd.check(bool(message), f"no message naming {db}: {text[-300:]!r}")
    rnd.notes.append("message: " + message.replace(str(tmp), "{dir}"))
    rnd.check(hashlib.sha256(db.read_bytes()).hexdigest() == before, "the store was modified")
    # Yardstick: how much of that is the interpreter importing the daemon's modules.
    started = time.monotonic()
    importer = await asyncio.create_subprocess_exec(sys.executable, "-c", "import controller.app")
    await importer.wait()
    rnd.took(
        "yardstick: `python -c 'import controller.app'` start -> exit", started, time.monotonic()
    )
