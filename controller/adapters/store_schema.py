"""The state store's schema: an ordered list of migrations, each one step from version n to n+1.

`PRAGMA user_version` is the schema version; `PRAGMA application_id` marks the file as a curtaild
store, so a state_dir pointed at another program's SQLite file is refused instead of being
"migrated" into ours. A migration is applied in one transaction together with its
`user_version` bump: a crash or an error half-way leaves the file at the old version, intact.

History (never edit a released step; append a new one):
- 1: the controller's state: obligations, override, nonces, pools, frequency trip, meta.
- 2: the audit trail (CONTRACT 2.5 event records) with its index on `at`, for `curtaild audit`
  range queries and retention pruning.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

# "curt" in ASCII: what `PRAGMA application_id` holds in every curtaild store.
APPLICATION_ID = 0x63757274

# One step per entry: MIGRATIONS[n] takes the schema from version n to n + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # Singleton rows (override, trip) use a fixed id so "replace" is one statement.
        "CREATE TABLE obligation (key TEXT PRIMARY KEY, doc TEXT NOT NULL)",
        "CREATE TABLE override (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL)",
        "CREATE TABLE nonce (nonce TEXT PRIMARY KEY, keep_until REAL NOT NULL)",
        "CREATE INDEX nonce_keep_until ON nonce (keep_until)",
        (
            "CREATE TABLE pool (name TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
            " target_kw REAL NOT NULL, running INTEGER NOT NULL, changed_at REAL,"
            " reason TEXT NOT NULL)"
        ),
        (
            "CREATE TABLE trip (id INTEGER PRIMARY KEY CHECK (id = 1), active INTEGER NOT NULL,"
            " ok_since REAL)"
        ),
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"PRAGMA application_id = {APPLICATION_ID}",
    ),
    (
        # id is the rowid: the index on `at` carries it, so ORDER BY at, id needs no sort.
        (
            "CREATE TABLE audit (id INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL,"
            " doc TEXT NOT NULL)"
        ),
        "CREATE INDEX audit_at ON audit (at)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

TABLES = frozenset({"obligation", "override", "nonce", "pool", "trip", "meta", "audit"})


def migrate(conn: sqlite3.Connection, from_version: int) -> list[int]:
    """Apply every step above `from_version`, each in its own transaction; the versions reached.

    `conn` must be in autocommit mode (isolation_level=None) so BEGIN/COMMIT are ours: the sqlite3
    module's implicit transactions and `executescript` (which commits first) would split a step.
    """
    reached: list[int] = []
    for version in range(from_version, SCHEMA_VERSION):
        _apply_step(conn, MIGRATIONS[version], version + 1)
        reached.append(version + 1)
    return reached


def _apply_step(conn: sqlite3.Connection, statements: Sequence[str], to_version: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements:
            conn.execute(statement)
        # PRAGMA takes no parameters; to_version is an int from range(), never input.
        conn.execute(f"PRAGMA user_version = {int(to_version)}")
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may already have rolled back (disk full, I/O error); a second ROLLBACK would
        # raise and hide the real cause.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def missing_tables(conn: sqlite3.Connection) -> list[str]:
    """Tables of the current schema that the file lacks (a damaged or foreign store)."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    present = {str(name) for (name,) in rows}
    return sorted(TABLES - present)
