"""The plain data the state store reads and writes, and the checks made before any SQL runs.

The store knows rows, not controller state: the runtime turns its state into a `StoreDelta`
per decision and a `StoredState` back into its state at start. Every value is checked before the
transaction begins (`check_delta`), so a bad value raises `ValueError` naming its field and never
leaves half a decision in the file. A value of the wrong type is a ValueError too (not TypeError,
hence the TRY004 waivers): the daemon has one exception to catch for "this row cannot be stored".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

# SQLite INTEGER is a signed 64-bit value.
_MAX_SEQ = 2**63 - 1


@dataclass(frozen=True, slots=True)
class StoredPool:
    name: str
    seq: int  # last cmd seq we issued
    target_kw: float  # last target
    on: bool  # running (target > 0) vs curtailed, for dwell (I7)
    changed_at: float | None  # epoch s of its last on/off change (dwell); None = never
    reason: str


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at: float  # epoch s
    kind: str  # e.g. "decision", "commands", "ack", "rejected", "dispatch"
    doc: str  # the whole event record as JSON text (as published on events)


@dataclass(frozen=True, slots=True)
class StoredState:
    obligations: dict[str, str]  # key -> JSON doc (opaque to the store)
    override: str | None  # JSON doc of the active override, or None
    nonces: dict[str, float]  # nonce -> keep_until (epoch s)
    pools: dict[str, StoredPool]
    trip_active: bool
    trip_ok_since: float | None  # epoch s, frequency above reset since (reset timer)
    meta: dict[str, str]  # small extra key/values


@dataclass(slots=True)
class StoreDelta:
    """Everything one decision changed; written as ONE transaction."""

    obligations: dict[str, str] | None = None  # not None: the complete active set (replace all)
    override_changed: bool = False
    override: str | None = None  # used when override_changed; None clears it
    nonces: dict[str, float] = field(default_factory=dict)  # inserted (nonce -> keep_until)
    pools: dict[str, StoredPool] = field(default_factory=dict)  # upserted
    trip: tuple[bool, float | None] | None = None  # not None: (active, ok_since) replaces the row
    meta: dict[str, str] = field(default_factory=dict)  # upserted
    audit: list[AuditRecord] = field(default_factory=list)  # appended

    def empty(self) -> bool:
        """Nothing to write: the store skips the transaction (and its fsync) entirely."""
        return (
            self.obligations is None
            and not self.override_changed
            and not self.nonces
            and not self.pools
            and self.trip is None
            and not self.meta
            and not self.audit
        )


def check_delta(delta: StoreDelta) -> None:
    """Raise ValueError naming the first bad field; the database is not touched yet."""
    if delta.obligations is not None:
        for key, doc in delta.obligations.items():
            check_text(key, f"obligations key {key!r}")
            check_json(doc, f"obligations[{key!r}]")
    if delta.override_changed and delta.override is not None:
        check_json(delta.override, "override")
    for nonce, keep_until in delta.nonces.items():
        check_text(nonce, f"nonces key {nonce!r}")
        check_number(keep_until, f"nonces[{nonce!r}]")
    for name, pool in delta.pools.items():
        _check_pool(name, pool)
    if delta.trip is not None:
        active, ok_since = delta.trip
        if not isinstance(active, bool):
            raise ValueError(f"trip active: expected a bool, got {active!r}")
        if ok_since is not None:
            check_number(ok_since, "trip ok_since")
    for key, value in delta.meta.items():
        check_text(key, f"meta key {key!r}")
        check_text(value, f"meta[{key!r}]", allow_empty=True)
    for index, record in enumerate(delta.audit):
        check_number(record.at, f"audit[{index}].at")
        check_text(record.kind, f"audit[{index}].kind")
        check_json(record.doc, f"audit[{index}].doc ({record.kind})")


def _check_pool(name: str, pool: StoredPool) -> None:
    where = f"pools[{name!r}]"
    if pool.name != name:
        raise ValueError(f"{where}: keyed under {name!r} but named {pool.name!r}")
    check_text(name, f"{where}.name")
    if isinstance(pool.seq, bool) or not isinstance(pool.seq, int):
        raise ValueError(f"{where}.seq: expected an int, got {pool.seq!r}")  # noqa: TRY004
    if not 0 <= pool.seq <= _MAX_SEQ:
        raise ValueError(f"{where}.seq: {pool.seq} is outside 0 .. 2**63-1")
    check_number(pool.target_kw, f"{where}.target_kw")
    if pool.target_kw < 0:
        raise ValueError(f"{where}.target_kw: {pool.target_kw!r} is negative")
    if not isinstance(pool.on, bool):
        raise ValueError(f"{where}.on: expected a bool, got {pool.on!r}")  # noqa: TRY004
    if pool.changed_at is not None:
        check_number(pool.changed_at, f"{where}.changed_at")
    check_text(pool.reason, f"{where}.reason", allow_empty=True)


def check_number(value: object, where: str) -> None:
    """A finite int or float: NaN or inf in a time would make range queries and pruning lie."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")  # noqa: TRY004
    if not math.isfinite(value):
        raise ValueError(f"{where}: {value!r} is not a finite number")


def check_text(value: object, where: str, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected a str, got {type(value).__name__}")  # noqa: TRY004
    if not value and not allow_empty:
        raise ValueError(f"{where}: empty")
    _check_utf8(value, where)


def check_json(doc: object, where: str) -> None:
    """Strict JSON text: Python's parser also takes NaN and Infinity, which JSON does not."""
    if not isinstance(doc, str):
        raise ValueError(f"{where}: expected JSON text (str), got {type(doc).__name__}")  # noqa: TRY004
    try:
        json.loads(doc, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{where}: not JSON ({exc})") from None
    _check_utf8(doc, where)


def _check_utf8(value: str, where: str) -> None:
    """SQLite stores UTF-8; a lone surrogate (JSON's "\\ud800" decodes to one) cannot be bound.

    Left to sqlite3 it would fail half-way through the transaction instead of before it.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where}: {exc.reason} at position {exc.start}") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")
