"""Shared pieces of the state store tests: a delta touching every field, and file inspection."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from controller.adapters.store import AuditRecord, StoreDelta, StoredPool, StoredState

T0 = 1_700_000_000.0

# The v1 schema exactly as version 1 shipped it, frozen here on purpose: a test that migrates
# this file proves the migration chain works on a real old store, and catches an edit to a
# released step (store_schema.MIGRATIONS[0]) that would make fresh and migrated stores differ.
V1_DDL = (
    "CREATE TABLE obligation (key TEXT PRIMARY KEY, doc TEXT NOT NULL)",
    "CREATE TABLE override (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL)",
    "CREATE TABLE nonce (nonce TEXT PRIMARY KEY, keep_until REAL NOT NULL)",
    "CREATE INDEX nonce_keep_until ON nonce (keep_until)",
    (
        "CREATE TABLE pool (name TEXT PRIMARY KEY, seq INTEGER NOT NULL, target_kw REAL NOT NULL,"
        " running INTEGER NOT NULL, changed_at REAL, reason TEXT NOT NULL)"
    ),
    (
        "CREATE TABLE trip (id INTEGER PRIMARY KEY CHECK (id = 1), active INTEGER NOT NULL,"
        " ok_since REAL)"
    ),
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "PRAGMA application_id = 1668641396",  # 0x63757274, "curt"
    "PRAGMA user_version = 1",
)


def ecrs_doc(ident: str, baseline_kw: float) -> str:
    return json.dumps({"id": ident, "type": "ECRS", "mw": 8.0, "baseline_kw": baseline_kw})


def full_delta() -> StoreDelta:
    """A delta that sets every field the store has, with awkward values where they exist."""
    return StoreDelta(
        obligations={"VDI-1": ecrs_doc("VDI-1", 34_300.0), "EEA": '{"level": 2}'},
        override_changed=True,
        override='{"mode": "curtail", "operator": "jdoe", "reason": "breaker wörk"}',
        nonces={"5f1c": T0 + 240.0, "n-2": T0 + 0.1 + 0.2},
        pools={
            "c01": StoredPool("c01", 17, 1200.5, True, T0 - 30.0, "price"),
            "c02": StoredPool("c02", 2**63 - 1, 0.0, False, None, ""),
        },
        trip=(True, T0 + 12.25),
        meta={"last_raise_at": str(T0), "empty": ""},
        audit=[
            AuditRecord(T0, "decision", '{"binding": "dispatch:VDI-1"}'),
            AuditRecord(T0, "commands", '{"c01": {"seq": 17, "target_kw": 1200.5}}'),
            AuditRecord(T0 + 0.5, "ack", '{"id": "VDI-1", "status": "accepted"}'),
        ],
    )


def kill_sequence(count: int) -> list[StoreDelta]:
    """What the writer process writes before it kills itself: every field, then a deployment."""
    deltas = [full_delta()]
    for i in range(count):
        pool = StoredPool("c01", 18 + i, 0.0, False, T0 + i, "dispatch:VDI-1")
        deltas.append(
            StoreDelta(
                obligations={"VDI-1": json.dumps({"id": "VDI-1", "step": i})},
                pools={"c01": pool},
                trip=(i % 2 == 0, T0 + i),
                audit=[AuditRecord(T0 + i, "commands", json.dumps({"c01": pool.seq}))],
            )
        )
    return deltas


def state_of(delta: StoreDelta) -> StoredState:
    """What load() must return after `delta` alone was written to an empty store."""
    trip = delta.trip or (False, None)
    return StoredState(
        obligations=dict(delta.obligations or {}),
        override=delta.override if delta.override_changed else None,
        nonces=dict(delta.nonces),
        pools=dict(delta.pools),
        trip_active=trip[0],
        trip_ok_since=trip[1],
        meta=dict(delta.meta),
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pragma(path: Path, name: str) -> int:
    """Read a header PRAGMA through a connection of the test's own (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"PRAGMA {name}").fetchone()[0])
    finally:
        conn.close()


def schema_sql(path: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        return {(str(name), " ".join(str(sql).split())) for name, sql in rows}
    finally:
        conn.close()
