"""The state store's statements: rows in and out of the schema of store_schema.py.

Each function runs inside a transaction the caller opened; none commits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from controller.adapters.store_records import AuditRecord, StoreDelta, StoredPool, StoredState

_AUDIT_BATCH = 500


def read_state(conn: sqlite3.Connection) -> StoredState:
    obligations = {str(k): str(d) for k, d in conn.execute("SELECT key, doc FROM obligation")}
    override_row = conn.execute("SELECT doc FROM override WHERE id = 1").fetchone()
    nonces = {str(n): float(t) for n, t in conn.execute("SELECT nonce, keep_until FROM nonce")}
    pools = {
        str(name): StoredPool(
            name=str(name),
            seq=int(seq),
            target_kw=float(target_kw),
            on=bool(running),
            changed_at=None if changed_at is None else float(changed_at),
            reason=str(reason),
        )
        for name, seq, target_kw, running, changed_at, reason in conn.execute(
            "SELECT name, seq, target_kw, running, changed_at, reason FROM pool"
        )
    }
    trip_row = conn.execute("SELECT active, ok_since FROM trip WHERE id = 1").fetchone()
    meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    return StoredState(
        obligations=obligations,
        override=None if override_row is None else str(override_row[0]),
        nonces=nonces,
        pools=pools,
        trip_active=trip_row is not None and bool(trip_row[0]),
        trip_ok_since=None if trip_row is None or trip_row[1] is None else float(trip_row[1]),
        meta=meta,
    )


def apply_delta(conn: sqlite3.Connection, delta: StoreDelta) -> None:
    """Every part of `delta`; the audit rows go last (a failure there undoes the rest too)."""
    if delta.obligations is not None:
        conn.execute("DELETE FROM obligation")
        conn.executemany(
            "INSERT INTO obligation (key, doc) VALUES (?, ?)", delta.obligations.items()
        )
    if delta.override_changed:
        conn.execute("DELETE FROM override")
        if delta.override is not None:
            conn.execute("INSERT INTO override (id, doc) VALUES (1, ?)", (delta.override,))
    if delta.nonces:
        # A nonce is never kept for less time than already promised.
        conn.executemany(
            "INSERT INTO nonce (nonce, keep_until) VALUES (?, ?) ON CONFLICT (nonce)"
            " DO UPDATE SET keep_until = max(keep_until, excluded.keep_until)",
            delta.nonces.items(),
        )
    if delta.pools:
        conn.executemany(
            "INSERT OR REPLACE INTO pool (name, seq, target_kw, running, changed_at, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [
                (p.name, p.seq, float(p.target_kw), int(p.on), p.changed_at, p.reason)
                for p in delta.pools.values()
            ],
        )
    if delta.trip is not None:
        active, ok_since = delta.trip
        conn.execute(
            "INSERT OR REPLACE INTO trip (id, active, ok_since) VALUES (1, ?, ?)",
            (int(active), ok_since),
        )
    if delta.meta:
        conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", delta.meta.items()
        )
    if delta.audit:
        conn.executemany(
            "INSERT INTO audit (at, kind, doc) VALUES (?, ?, ?)",
            [(r.at, r.kind, r.doc) for r in delta.audit],
        )


def prune_rows(conn: sqlite3.Connection, now: float, cutoff: float) -> tuple[int, int]:
    nonces = conn.execute("DELETE FROM nonce WHERE keep_until < ?", (now,)).rowcount
    audit = conn.execute("DELETE FROM audit WHERE at < ?", (cutoff,)).rowcount
    return nonces, audit


def audit_rows(conn: sqlite3.Connection, low: float, high: float) -> Iterator[AuditRecord]:
    """low <= at < high in (at, rowid) order: the `audit_at` index gives it without a sort."""
    cursor = conn.execute(
        "SELECT at, kind, doc FROM audit WHERE at >= ? AND at < ? ORDER BY at, id", (low, high)
    )
    while rows := cursor.fetchmany(_AUDIT_BATCH):
        for at, kind, doc in rows:
            yield AuditRecord(at=float(at), kind=str(kind), doc=str(doc))
