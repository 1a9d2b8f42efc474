"""Starting without surprises (CONTRACT 7 State store, Startup; I6).

The store is opened and read before anything connects: obligations with their baselines, the
override, used nonces, each pool's seq, last target and dwell clock, and the frequency trip
come back as they were. Then the first decision waits, at most `confirm_timeout_s` after start,
for the site meter (when one is configured) and every reachable pool's telemetry, so that it
sees the site as it is; READY follows it. No device is written unless that decision changes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Iterable
from pathlib import Path

from controller.adapters.store import DB_NAME, AsyncStateStore, StoredState, StoreError
from controller.clock import Clock
from controller.config import Config
from controller.drivers.pool import PoolDriver
from controller.runtime import persist
from controller.runtime.inputs import Inputs
from controller.runtime.loop import ControlLoop

POLL_S = 0.02
LOCK_NAME = "curtaild.lock"


def lock_state_dir(state_dir: Path) -> int:
    """One daemon per state directory: an exclusive lock held for the life of the process (the
    kernel drops it when the process dies, kill -9 included). Two daemons on one store would
    both command the devices. Returns the descriptor to keep open; StoreError when taken."""
    path = state_dir / LOCK_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(
            f"state directory {state_dir}: cannot create {LOCK_NAME} ({exc.strerror}); "
            "create it writable by the service user, or set control.state_dir"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"state directory {state_dir} is in use by another curtaild (pid {holder}); one "
            "daemon per site: stop the other one, or give this one its own control.state_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


async def open_store(config: Config, loop: ControlLoop, inputs: Inputs) -> AsyncStateStore:
    """Open the store and restore what it holds; StoreError (exit 1, naming the file) when it
    cannot be opened or read. A store is never reset silently."""
    path = Path(config.control.state_dir) / DB_NAME
    store = await AsyncStateStore.open(path)
    try:
        restore_state(config, loop, inputs, await store.load())
    except persist.RestoreError as exc:
        await store.close()
        raise StoreError(
            f"state store {path}: a stored row cannot be read ({exc}). Stop here rather than "
            "start without its obligations: move the file (with its -wal and -shm files) aside "
            "to start with an empty store, losing the obligations, override and nonces in it."
        ) from None
    except BaseException:
        await store.close()
        raise
    loop.store = store
    return store


def restore_state(config: Config, loop: ControlLoop, inputs: Inputs, stored: StoredState) -> None:
    """Continue from `stored` (this node's store, or a pair's replica at a takeover);
    persist.RestoreError when a row cannot be read."""
    state = persist.restore(stored, loop.clock.time(), (p.name for p in config.pools))
    loop.restore(state)
    inputs.restore_nonces(stored.nonces)


def site_seen(config: Config, inputs: Inputs, pools: Iterable[PoolDriver]) -> bool:
    """The site meter (when configured) has a reading and every pool has reported, or its
    device is known to be down (then it cannot report, and it is not waited for)."""
    for meter in config.meters:
        if meter.role == "site" and meter.name not in inputs.meters_kw:
            return False
    return all(driver.name in inputs.pools or driver.down() for driver in pools)


async def wait_for_site(
    config: Config,
    inputs: Inputs,
    pools: Iterable[PoolDriver],
    clock: Clock,
    deadline: float,
    stop: asyncio.Event,
) -> None:
    """Until the site has been seen, the deadline (monotonic) passes, or a stop is asked."""
    while clock.monotonic() < deadline and not stop.is_set():
        if site_seen(config, inputs, pools):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)
