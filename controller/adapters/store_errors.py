"""StoreError and its messages: each names the file, the cause and what the operator should do.

The store is never reset or repaired on its own: an operator who moves a store aside loses the
active obligations (I5 baselines), the override, the used nonces (replay protection) and the
audit trail, and that trade is theirs to make, so the message spells it out.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from controller.errors import CurtaildError


class StoreError(CurtaildError):
    """One message naming the file, the cause and the fix (corrupt, newer, unwritable...)."""

    exit_code = 1


def _move_aside(path: Path) -> str:
    return (
        f"stop curtaild and move {path.name} aside, with {path.name}-wal and {path.name}-shm if "
        "present (a stale -wal would be replayed into a new file), to start with an empty "
        "store; the obligations, override, used nonces, pool dwell times and audit trail in it "
        "are then lost, so keep the copy for settlement records"
    )


def corrupt(path: Path, detail: str) -> StoreError:
    first = detail.strip().splitlines()[:4]
    return StoreError(
        f"state store {path} is corrupt ({'; '.join(first)}); curtaild will not reset it. "
        f"Restore it from a backup, or {_move_aside(path)}"
    )


def newer(path: Path, version: int, known: int) -> StoreError:
    return StoreError(
        f"state store {path} has schema version {version}, newer than this release knows "
        f"({known}): a newer curtaild wrote it and this one cannot read it safely. Run the "
        f"newer release again, or {_move_aside(path)}"
    )


def foreign(path: Path, detail: str) -> StoreError:
    return StoreError(
        f"{path} is not a curtaild state store ({detail}); curtaild will not modify it. "
        f"Point control.state_dir at a directory of curtaild's own, or {_move_aside(path)}"
    )


def missing(path: Path) -> StoreError:
    return StoreError(
        f"no state store at {path}: curtaild has not run with this control.state_dir yet, or "
        "the path is wrong; check control.state_dir in the config"
    )


def unreadable(path: Path, exc: sqlite3.Error) -> StoreError:
    """A reader (curtaild audit) could not open or read the store: never a reason to touch it."""
    code = str(getattr(exc, "sqlite_errorname", "") or "")
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return corrupt(path, str(exc))
    return StoreError(
        f"cannot read the state store {path} ({exc}, {code or 'no code'}): run this as root or "
        f"as the service user; while curtaild is stopped, reading also needs write access to "
        f"{path.parent} (SQLite's read-only mode creates {path.name}-shm there)"
    )


def directory(path: Path, exc: OSError, doing: str = "create") -> StoreError:
    cause = exc.strerror or str(exc)
    return StoreError(
        f"cannot {doing} the state directory {path} ({cause}); create it writable by the "
        "service user, or set control.state_dir to such a directory"
    )


def from_sqlite(path: Path, exc: sqlite3.Error, doing: str) -> StoreError:
    """Classify a sqlite3 error by its SQLite result code (Python 3.11's sqlite_errorname)."""
    code = str(getattr(exc, "sqlite_errorname", "") or "")
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return corrupt(path, str(exc))
    if code.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")):
        return StoreError(
            f"cannot {doing} the state store {path} ({exc}): the service user must be able to "
            f"write {path.parent} and the files in it (SQLite creates {path.name}-wal and "
            f"{path.name}-shm next to it); fix the ownership or permissions, or set "
            "control.state_dir to a writable directory"
        )
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreError(
            f"cannot {doing} the state store {path}: another process holds a lock on it "
            "(another curtaild on the same control.state_dir?); stop it, or give each "
            "instance its own control.state_dir"
        )
    if code.startswith("SQLITE_FULL"):
        return StoreError(
            f"cannot {doing} the state store {path}: the disk is full; free space on the "
            f"filesystem of {path.parent}"
        )
    if code.startswith("SQLITE_IOERR"):
        return StoreError(
            f"cannot {doing} the state store {path}: I/O error ({exc}, {code}); check the disk "
            "(kernel log) and the filesystem of control.state_dir"
        )
    return StoreError(f"cannot {doing} the state store {path}: {exc} ({code or 'no code'})")
