"""The state store across a SIGKILL, and AsyncStateStore: one worker thread, writes in order.

The kill test runs real processes: a writer that SIGKILLs itself the moment write() returns
(the log is never checkpointed, nothing is closed) and a fresh reader process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from controller.adapters import store as store_module
from controller.adapters import store_sql
from controller.adapters.store import (
    DB_NAME,
    AsyncStateStore,
    AuditRecord,
    StateStore,
    StoreDelta,
    StoredPool,
    StoreError,
)
from tests.unit.store_support import T0, full_delta, kill_sequence

ROOT = Path(__file__).resolve().parents[2]


_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from controller.adapters.store import StateStore
    from tests.unit.store_support import kill_sequence
    store = StateStore.open(Path(sys.argv[1]))
    for delta in kill_sequence(int(sys.argv[2])):
        store.write(delta)
    os.kill(os.getpid(), signal.SIGKILL)  # right after the last write() returned
    """
)

_READER = textwrap.dedent(
    """
    import dataclasses, json, sys
    from pathlib import Path
    from controller.adapters.store import StateStore
    with StateStore.open(Path(sys.argv[1])) as store:
        state = dataclasses.asdict(store.load())
        audit = [dataclasses.asdict(r) for r in store.audit()]
    print(json.dumps({"state": state, "audit": audit}))
    """
)


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_write_survives_sigkill_right_after_it_returns(tmp_path: Path) -> None:
    db = tmp_path / "state" / DB_NAME
    writer = _python(_WRITER, str(db), "25")
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    wal = db.with_name(DB_NAME + "-wal")
    assert wal.stat().st_size > 0  # never checkpointed: the reader must recover from the log

    reader = _python(_READER, str(db))
    assert reader.returncode == 0, reader.stderr
    got = json.loads(reader.stdout)

    with StateStore.open(tmp_path / "reference" / DB_NAME) as reference:
        for delta in kill_sequence(25):
            reference.write(delta)
        want_state = json.loads(json.dumps(dataclasses.asdict(reference.load())))
        want_audit = [dataclasses.asdict(r) for r in reference.audit()]
    assert got["state"] == want_state
    assert got["audit"] == want_audit
    assert got["state"]["pools"]["c01"]["seq"] == 18 + 24


class _Watch:
    """Wraps the store's transaction body: which threads ran writes, and how many at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.most_active = 0
        self.threads: set[int] = set()
        self.release = threading.Event()
        self.release.set()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def watched(conn: sqlite3.Connection, delta: StoreDelta) -> None:
            with self.lock:
                self.active += 1
                self.most_active = max(self.most_active, self.active)
                self.threads.add(threading.get_ident())
            try:
                self.release.wait(timeout=30)
                store_sql.apply_delta(conn, delta)
            finally:
                with self.lock:
                    self.active -= 1

        monkeypatch.setattr(store_module, "apply_delta", watched)


def _one_audit(i: int) -> StoreDelta:
    pool = StoredPool(f"p{i:03d}", i, float(i), True, T0, "price")
    return StoreDelta(pools={pool.name: pool}, audit=[AuditRecord(T0, "commands", str(i))])


async def test_concurrent_writes_run_one_at_a_time_in_call_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = _Watch()
    watch.install(monkeypatch)
    store = await AsyncStateStore.open(tmp_path / DB_NAME)
    try:
        await asyncio.gather(*(store.write(_one_audit(i)) for i in range(40)))
        state = await store.load()
    finally:
        await store.close()
    assert watch.most_active == 1
    assert len(watch.threads) == 1
    assert threading.get_ident() not in watch.threads
    assert sorted(state.pools) == [f"p{i:03d}" for i in range(40)]
    with StateStore.open(tmp_path / DB_NAME) as reread:
        assert [r.doc for r in reread.audit()] == [str(i) for i in range(40)]


async def test_the_event_loop_runs_while_a_write_waits_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = _Watch()
    watch.install(monkeypatch)
    store = await AsyncStateStore.open(tmp_path / DB_NAME)
    try:
        watch.release.clear()  # the worker blocks inside the write, as on a slow fsync
        pending = asyncio.ensure_future(store.write(_one_audit(1)))
        turns = 0  # the loop keeps turning while the worker is stuck in the write
        while (watch.active == 0 or turns < 20) and turns < 1_000_000:
            await asyncio.sleep(0)
            turns += 1
        assert watch.active == 1
        assert not pending.done()
        watch.release.set()
        await pending
        assert sorted((await store.load()).pools) == ["p001"]
    finally:
        watch.release.set()
        await store.close()


async def test_close_waits_for_writes_already_made(tmp_path: Path) -> None:
    store = await AsyncStateStore.open(tmp_path / DB_NAME)
    tasks = [asyncio.ensure_future(store.write(_one_audit(i))) for i in range(20)]
    await asyncio.sleep(0)  # every task has handed its write to the worker
    await store.close()
    await asyncio.gather(*tasks)
    with StateStore.open(tmp_path / DB_NAME) as reread:
        assert len(reread.load().pools) == 20
        assert len(list(reread.audit())) == 20


async def test_async_load_prune_and_close(tmp_path: Path) -> None:
    store = await AsyncStateStore.open(tmp_path / "new" / DB_NAME)
    assert store.path == tmp_path / "new" / DB_NAME
    await store.write(full_delta())
    await store.write(StoreDelta())  # empty: nothing to do
    assert (await store.load()).pools == full_delta().pools
    assert await store.prune(T0 + 1e6, 0.0) == (2, 3)
    assert (await store.load()).nonces == {}
    with pytest.raises(ValueError, match="now"):
        await store.prune(float("nan"), 1.0)
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.load()


async def test_async_open_reports_a_refused_store(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    db.write_bytes(b"not a database, just some bytes" * 200)
    with pytest.raises(StoreError, match="corrupt"):
        await AsyncStateStore.open(db)
