"""Opening a state store: every check runs before anything is written, so a store that is refused
(corrupt, newer schema, foreign, unwritable) is left exactly as it was found.

Order: directory -> connect -> read the header (application_id, user_version) -> quick_check ->
WAL + synchronous=FULL -> migrations -> tables present -> a write probe (rolled back) ->
fsync of the directory when the file is new.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from controller.adapters import store_errors as errors
from controller.adapters.store_errors import StoreError
from controller.adapters.store_schema import APPLICATION_ID, SCHEMA_VERSION, migrate, missing_tables


def prepare(path: Path, *, create: bool) -> None:
    """The directory exists (made when `create`) and `path` can be the store's file."""
    if path.is_dir():
        raise StoreError(
            f"state store {path} is a directory; control.state_dir names the directory that "
            f"holds {path.name}, and {path} must be free for the file"
        )
    if not create:
        if not path.is_file():
            raise errors.missing(path)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.directory(path.parent, exc) from exc


def set_up(conn: sqlite3.Connection, path: Path) -> None:
    """Check, configure and migrate a freshly connected store; StoreError when it must not open."""
    try:
        version = _inspect(conn, path)
        _use_wal(conn, path)
    except sqlite3.Error as exc:
        raise errors.from_sqlite(path, exc, "open") from exc
    try:
        migrate(conn, version)
    except sqlite3.Error as exc:
        doing = f"migrate (schema {version} -> {SCHEMA_VERSION})"
        raise errors.from_sqlite(path, exc, doing) from exc
    absent = missing_tables(conn)
    if absent:
        raise errors.foreign(path, f"schema {SCHEMA_VERSION} without table(s) {', '.join(absent)}")
    try:
        _probe_write(conn)
    except sqlite3.Error as exc:
        raise errors.from_sqlite(path, exc, "write") from exc
    if version == 0:
        _sync_directory(path)


def _inspect(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version, after refusing what is not a sound curtaild store we know."""
    app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if app_id not in {0, APPLICATION_ID}:
        raise errors.foreign(path, f"application_id {app_id:#x}")
    if app_id == 0 and version != 0:
        raise errors.foreign(path, f"schema version {version} without curtaild's application_id")
    if version > SCHEMA_VERSION:
        raise errors.newer(path, version, SCHEMA_VERSION)
    # quick_check reads every page (it skips only the index-to-table cross checks): a truncated
    # file or a damaged page is found here, at start, not by a write during a deployment.
    problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise errors.corrupt(path, "quick_check: " + "; ".join(problems))
    if app_id == 0:
        objects = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        if objects:
            raise errors.foreign(path, f"{objects} tables or indexes, no curtaild application_id")
    return version


def _use_wal(conn: sqlite3.Connection, path: Path) -> None:
    mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
    if mode != "wal":
        raise StoreError(
            f"state store {path}: SQLite could not use WAL mode there (journal_mode is {mode}); "
            "put control.state_dir on a local filesystem"
        )
    # FULL: in WAL mode the log is synced at every commit, so a returned write() is on disk.
    conn.execute("PRAGMA synchronous = FULL")


def _probe_write(conn: sqlite3.Connection) -> None:
    """Fail at start, not at the first decision, when the file itself is read-only.

    SQLite opens a file it may not write read-only without saying so, and BEGIN IMMEDIATE still
    succeeds on it; only a real write is refused. This one is rolled back: nothing reaches disk.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _sync_directory(path: Path) -> None:
    """A new file's directory entry must reach the disk too, or a power cut can lose the file."""
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise errors.directory(path.parent, exc, "sync") from exc


def check_readable(conn: sqlite3.Connection, path: Path) -> None:
    """A read-only connection's file is a curtaild store this release can read (no writes)."""
    try:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if app_id != APPLICATION_ID:
            raise errors.foreign(path, f"application_id {app_id:#x}")
        if version > SCHEMA_VERSION:
            raise errors.newer(path, version, SCHEMA_VERSION)
        if version < SCHEMA_VERSION:
            # An older store is migrated by the daemon at its next start, never by a reader.
            raise StoreError(
                f"state store {path} has schema version {version}, older than this release's "
                f"({SCHEMA_VERSION}): start curtaild once on it (it migrates the file), then "
                "read it again"
            )
        absent = missing_tables(conn)
        if absent:
            raise errors.foreign(path, f"without table(s) {', '.join(absent)}")
    except sqlite3.Error as exc:
        raise errors.unreadable(path, exc) from exc
