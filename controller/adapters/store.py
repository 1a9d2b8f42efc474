"""The state store (CONTRACT 7, I6): SQLite in WAL mode at `{state_dir}/curtaild.db`.

It holds what a restarted controller must not forget (active obligations with their baselines,
the override, used nonces, per-pool seq, target and dwell, the frequency trip) and the audit
trail. The adapter carries rows, not decisions: it never imports core/ or runtime/.

Durability: `synchronous=FULL` in WAL mode syncs the log on every commit, so `write()` returns
only once the change is on disk, and the runtime sends the commands a change causes after that.

Threads: a `StateStore` is one connection used from the thread that opened it (sqlite3's
check_same_thread enforces it). `AsyncStateStore` runs every call on one worker thread of its
own, in the order the calls were made, so the event loop never waits for an fsync and two
writes never overlap.
"""

from __future__ import annotations

import asyncio
import functools
import math
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from controller.adapters import store_errors as errors
from controller.adapters.store_errors import StoreError
from controller.adapters.store_records import (
    AuditRecord,
    StoreDelta,
    StoredPool,
    StoredState,
    check_delta,
    check_number,
)
from controller.adapters.store_schema import SCHEMA_VERSION
from controller.adapters.store_setup import check_readable, prepare, set_up
from controller.adapters.store_sql import apply_delta, audit_rows, prune_rows, read_state

__all__ = [
    "DB_NAME",
    "SCHEMA_VERSION",
    "AsyncStateStore",
    "AuditRecord",
    "StateStore",
    "StoreDelta",
    "StoreError",
    "StoredPool",
    "StoredState",
]

DB_NAME = "curtaild.db"

# Only another writer (a second daemon on the same state_dir, an operator's sqlite3 shell) can
# make a write wait; readers never do in WAL mode. Short, so a stuck writer shows up as an error.
BUSY_TIMEOUT_S = 2.0
_T = TypeVar("_T")


class StateStore:
    """One SQLite connection; every method is synchronous and blocks on disk I/O."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> StateStore:
        """Open (creating the directory and file when `create`), check, switch to WAL, migrate.

        Raises StoreError, without modifying the file, when it is corrupt, of a newer schema,
        not a curtaild store, or cannot be created or written.
        """
        path = Path(path)
        prepare(path, create=create)
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise errors.from_sqlite(path, exc, "open") from exc
        try:
            set_up(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    @classmethod
    def open_readonly(cls, path: Path) -> StateStore:
        """Open an existing store for reading only, beside a running daemon.

        No lock file, no migration, no write probe, no WAL switch: SQLite's read-only mode
        (`mode=ro`) reads the daemon's WAL and never blocks its writes. Raises StoreError naming
        the file when it is missing, not a curtaild store, of a newer schema or unreadable.
        """
        path = Path(path)
        prepare(path, create=False)
        try:
            conn = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_S,
            )
        except sqlite3.Error as exc:
            raise errors.unreadable(path, exc) from exc
        try:
            check_readable(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def load(self) -> StoredState:
        """Everything the store holds except the audit trail, read in one snapshot."""
        conn = self._live()
        try:
            conn.execute("BEGIN")
            try:
                state = read_state(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise errors.from_sqlite(self.path, exc, "read") from exc
        return state

    def write(self, delta: StoreDelta) -> None:
        """Apply `delta` in one transaction, durable when this returns; all of it or none."""
        check_delta(delta)
        if delta.empty():
            return
        self._transaction(functools.partial(apply_delta, delta=delta), "write")

    def prune(self, now: float, audit_retention_days: float) -> tuple[int, int]:
        """Drop nonces kept until before `now` and audit rows older than the retention.

        Returns (nonces removed, audit rows removed).
        """
        check_number(now, "now")
        check_number(audit_retention_days, "audit_retention_days")
        if audit_retention_days < 0:
            raise ValueError(f"audit_retention_days: {audit_retention_days!r} is negative")
        cutoff = now - audit_retention_days * 86400.0
        return self._transaction(functools.partial(prune_rows, now=now, cutoff=cutoff), "prune")

    def audit(
        self, from_at: float | None = None, to_at: float | None = None
    ) -> Iterator[AuditRecord]:
        """Audit records with from_at <= at < to_at, ordered by (at, insertion order)."""
        for value, where in ((from_at, "from_at"), (to_at, "to_at")):
            if value is not None:
                check_number(value, where)
        low = -math.inf if from_at is None else float(from_at)
        high = math.inf if to_at is None else float(to_at)
        return self._audit_rows(self._live(), low, high)

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the log into the file); idempotent."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except sqlite3.Error as exc:
            raise errors.from_sqlite(self.path, exc, "close") from exc

    def __enter__(self) -> StateStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"state store {self.path} is closed")
        return self._conn

    def _transaction(self, body: Callable[[sqlite3.Connection], _T], doing: str) -> _T:
        conn = self._live()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (disk full, I/O error); a second
                # ROLLBACK would raise and hide the cause.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise errors.from_sqlite(self.path, exc, doing) from exc
        return result

    def _audit_rows(
        self, conn: sqlite3.Connection, low: float, high: float
    ) -> Iterator[AuditRecord]:
        try:
            yield from audit_rows(conn, low, high)
        except sqlite3.Error as exc:
            raise errors.from_sqlite(self.path, exc, "read the audit trail of") from exc


class AsyncStateStore:
    """The daemon's view of a StateStore: each call runs on one worker thread, in call order.

    A call whose task is cancelled before the worker starts it never runs; once started it
    completes (a write commits or rolls back whole), whether or not anyone still awaits it.
    A delta must not be changed until its write() has returned.
    """

    def __init__(self, store: StateStore, executor: ThreadPoolExecutor) -> None:
        self._store = store
        self._executor = executor
        self._closed = False

    @property
    def path(self) -> Path:
        return self._store.path

    @classmethod
    async def open(cls, path: Path, *, create: bool = True) -> AsyncStateStore:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curtaild-store")
        opener = functools.partial(StateStore.open, path, create=create)
        try:
            # The connection is created on the worker thread: every later call runs there too.
            store = await asyncio.get_running_loop().run_in_executor(executor, opener)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(store, executor)

    async def load(self) -> StoredState:
        return await self._run(self._store.load)

    async def write(self, delta: StoreDelta) -> None:
        if delta.empty():  # the common tick: no hop to the worker, no fsync
            return
        await self._run(functools.partial(self._store.write, delta))

    async def prune(self, now: float, audit_retention_days: float) -> tuple[int, int]:
        return await self._run(functools.partial(self._store.prune, now, audit_retention_days))

    async def close(self) -> None:
        """Wait for every call already made, then close the connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._store.close)
        finally:
            # Queued work still runs (cancel_futures=False), so a cancelled close() still closes.
            self._executor.shutdown(wait=False)

    async def _run(self, call: Callable[[], _T]) -> _T:
        if self._closed:
            raise RuntimeError(f"state store {self.path} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)
