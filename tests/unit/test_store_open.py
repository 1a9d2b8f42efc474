"""Opening the state store: fresh, empty and current files, migrations, and every refusal.

A refused store must be left byte for byte as it was found (never reset, never "repaired"),
and the StoreError must name the file and say what to do.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.adapters.store import (
    DB_NAME,
    SCHEMA_VERSION,
    AuditRecord,
    StateStore,
    StoreDelta,
    StoredPool,
    StoreError,
)
from controller.adapters.store_schema import APPLICATION_ID
from controller.errors import CurtaildError
from tests.unit.store_support import (
    T0,
    V1_DDL,
    digest,
    ecrs_doc,
    full_delta,
    pragma,
    schema_sql,
    state_of,
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "var" / "lib" / "curtaild" / DB_NAME


def _filled(db: Path, audit_rows: int = 0) -> Path:
    """A real store with state and `audit_rows` audit records, closed (checkpointed)."""
    delta = full_delta()
    delta.audit += [AuditRecord(T0 + i, "commands", f'{{"i": {i}, "pad": "{"x" * 200}"}}')
                    for i in range(audit_rows)]  # fmt: skip
    with StateStore.open(db) as store:
        store.write(delta)
    return db


def _refused(db: Path, *words: str) -> StoreError:
    """Open must fail with a StoreError naming the file and containing `words`; file untouched."""
    before = digest(db) if db.is_file() else None
    with pytest.raises(StoreError) as caught:
        StateStore.open(db)
    message = str(caught.value)
    assert str(db) in message or str(db.parent) in message, message
    for word in words:
        assert word in message, message
    if before is not None:
        assert digest(db) == before, "a refused store was modified"
    return caught.value


def test_a_fresh_directory_gets_a_store_at_the_current_version(db: Path) -> None:
    assert not db.parent.exists()
    with StateStore.open(db) as store:
        assert store.load() == state_of(StoreDelta())
    assert pragma(db, "user_version") == SCHEMA_VERSION
    assert pragma(db, "application_id") == APPLICATION_ID


def test_an_empty_file_is_initialised(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.touch()
    with StateStore.open(db) as store:
        store.write(full_delta())
    assert pragma(db, "user_version") == SCHEMA_VERSION


def test_a_current_store_reopens_without_migrating(db: Path) -> None:
    _filled(db)
    schema = schema_sql(db)
    with StateStore.open(db) as store:
        assert store.load() == state_of(full_delta())
    assert schema_sql(db) == schema
    assert pragma(db, "user_version") == SCHEMA_VERSION


def test_wal_and_synchronous_full_are_in_effect(db: Path) -> None:
    with StateStore.open(db) as store:
        conn = store._conn
        assert conn is not None
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        store.write(full_delta())
        assert db.with_name(DB_NAME + "-wal").stat().st_size > 0  # the commit went to the log
    assert pragma(db, "user_version") == SCHEMA_VERSION


def _v1_store(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")  # as every store curtaild ever wrote
    for statement in V1_DDL:
        conn.execute(statement)
    conn.execute("INSERT INTO obligation VALUES ('VDI-1', ?)", (ecrs_doc("VDI-1", 34_300.0),))
    conn.execute('INSERT INTO override VALUES (1, \'{"mode": "curtail"}\')')
    conn.execute("INSERT INTO nonce VALUES ('5f1c', ?)", (T0 + 240.0,))
    conn.execute("INSERT INTO pool VALUES ('c01', 41, 0.0, 0, ?, 'dispatch:VDI-1')", (T0,))
    conn.execute("INSERT INTO trip VALUES (1, 1, NULL)")
    conn.execute("INSERT INTO meta VALUES ('last_raise_at', '1700000000.0')")
    conn.close()


def test_a_version_1_store_is_migrated_with_its_rows_intact(db: Path, tmp_path: Path) -> None:
    _v1_store(db)
    assert pragma(db, "user_version") == 1
    with StateStore.open(db) as store:
        state = store.load()
        assert state.obligations == {"VDI-1": ecrs_doc("VDI-1", 34_300.0)}
        assert state.override == '{"mode": "curtail"}'
        assert state.nonces == {"5f1c": T0 + 240.0}
        assert state.pools == {"c01": StoredPool("c01", 41, 0.0, False, T0, "dispatch:VDI-1")}
        assert (state.trip_active, state.trip_ok_since) == (True, None)
        assert state.meta == {"last_raise_at": "1700000000.0"}
        store.write(StoreDelta(audit=[AuditRecord(T0, "decision", "{}")]))  # v2's table works
        assert list(store.audit()) == [AuditRecord(T0, "decision", "{}")]
    assert pragma(db, "user_version") == SCHEMA_VERSION
    fresh = tmp_path / "fresh" / DB_NAME
    StateStore.open(fresh).close()
    assert schema_sql(db) == schema_sql(fresh)  # migrated and new stores are the same schema


def test_a_failing_migration_leaves_the_old_version_intact(db: Path) -> None:
    _v1_store(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE VIEW audit_at AS SELECT 1")  # collides with step 2's index name
    conn.close()
    _refused(db, "migrate (schema 1 -> 2)")
    assert pragma(db, "user_version") == 1
    assert ("audit", "CREATE TABLE audit") not in {(n, s[:18]) for n, s in schema_sql(db)}


def test_a_newer_schema_is_refused_untouched(db: Path) -> None:
    _filled(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    error = _refused(db, f"schema version {SCHEMA_VERSION + 1}", "newer", "move")
    assert isinstance(error, CurtaildError)
    assert error.exit_code == 1
    assert pragma(db, "user_version") == SCHEMA_VERSION + 1


def test_garbage_bytes_are_refused_untouched(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(os.urandom(3 * 4096))
    _refused(db, "corrupt", "move", DB_NAME + "-wal", "lost")


def test_a_truncated_store_is_refused_untouched(db: Path) -> None:
    _filled(db, audit_rows=400)
    size = db.stat().st_size
    assert size > 20 * 4096
    os.truncate(db, size // 2)
    _refused(db, "corrupt", "malformed")


def test_a_damaged_page_fails_quick_check_and_is_refused(db: Path) -> None:
    _filled(db, audit_rows=400)
    with db.open("r+b") as f:  # page 1 (the header) intact; zero one page of the audit table
        f.seek(4096 * 6)
        f.write(bytes(4096))
    _refused(db, "corrupt", "quick_check")


def test_another_programs_database_is_refused_untouched(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.commit()
    conn.close()
    _refused(db, "not a curtaild state store")


def test_a_store_missing_a_table_is_refused(db: Path) -> None:
    _filled(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TABLE meta")
    conn.close()
    _refused(db, "without table(s) meta")


def test_a_parent_that_is_a_file_is_an_unwritable_directory(tmp_path: Path) -> None:
    # Tests run as root, and chmod does not deny root anything; a regular file where the state
    # directory should be fails for root too (ENOTDIR / EEXIST), so this really is refused.
    blocker = tmp_path / "var"
    blocker.write_text("not a directory\n")
    db = blocker / "lib" / "curtaild" / DB_NAME
    _refused(db, "cannot create the state directory", "control.state_dir")
    assert blocker.read_text() == "not a directory\n"


def test_a_directory_where_the_file_should_be_is_refused(db: Path) -> None:
    db.mkdir(parents=True)
    _refused(db, "is a directory")


def test_open_without_create_needs_an_existing_store(db: Path) -> None:
    with pytest.raises(StoreError, match="no state store at") as caught:
        StateStore.open(db, create=False)
    assert str(db) in str(caught.value)
    assert not db.parent.exists()
    _filled(db)
    with StateStore.open(db, create=False) as store:
        assert store.load() == state_of(full_delta())


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged user can traverse (tmp_path's parents are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="curtaild-store-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for directory in (path, *path.rglob("*")):
            if directory.is_dir():  # a test may have made one read-only
                directory.chmod(0o755)
        shutil.rmtree(path)


# The interpreter lives under /root (pyenv), which `nobody` cannot read: the child imports what
# it needs as root, then drops to nobody before opening the store.
_OPEN_AS_USER = textwrap.dedent(
    """
    import os
    import sys
    from pathlib import Path
    from controller.adapters.store import StateStore, StoreError
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    try:
        StateStore.open(Path(sys.argv[1])).close()
    except StoreError as exc:
        print(exc)
        sys.exit(3)
    """
)


def _open_unprivileged(db: Path) -> subprocess.CompletedProcess[str]:
    """Open `db` as a user without write access: `nobody` when we are root, else ourselves."""
    return subprocess.run(
        [sys.executable, "-c", _OPEN_AS_USER, str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("existing", [False, True], ids=["new-file", "existing-file"])
def test_a_directory_the_service_user_cannot_write_is_refused(
    shared_dir: Path, existing: bool
) -> None:
    # Permissions do not stop root: the store is opened by an unprivileged child process.
    state_dir = shared_dir / "state"
    state_dir.mkdir(mode=0o755)
    db = state_dir / DB_NAME
    if existing:
        _filled(db)
    before = digest(db) if existing else None
    if os.geteuid() != 0:  # the child runs as ourselves: take our write access away
        state_dir.chmod(0o555)
        if existing:
            db.chmod(0o444)
    done = _open_unprivileged(db)
    assert done.returncode == 3, done.stderr
    assert str(db) in done.stdout
    assert "write" in done.stdout
    assert "control.state_dir" in done.stdout
    if existing:
        assert digest(db) == before
    else:
        assert not db.exists()


def test_a_read_only_file_in_a_writable_directory_is_refused_at_open(shared_dir: Path) -> None:
    # SQLite silently opens a file it may not write read-only; the write probe catches it.
    state_dir = shared_dir / "state"
    state_dir.mkdir(mode=0o777)
    db = state_dir / DB_NAME
    _filled(db)
    db.chmod(0o444)
    before = digest(db)
    done = _open_unprivileged(db)
    assert done.returncode == 3, done.stderr
    assert "readonly" in done.stdout
    assert str(db) in done.stdout
    assert digest(db) == before
