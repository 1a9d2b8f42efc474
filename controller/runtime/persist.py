"""The controller state as state-store rows, and back (CONTRACT 7 State store, I6).

Pure functions: the loop builds one StoreDelta per decision from what changed and writes it
before any command the change causes goes out; at start, `restore` turns the stored rows into
the ControllerState the first decision continues from.

What is kept: active obligations (with the level they were measured from and their status),
the override, used nonces, per pool seq / last target / on-off state and the wall-clock time of
its last change (dwell), and the frequency trip with its reset timer. What is not: telemetry and
confirmation (re-read from the devices), the dispatch heartbeat clock (it starts at daemon start,
CONTRACT 7) and the ramp step (the first decision never raises).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

from controller.adapters.store import AuditRecord, StoreDelta, StoredPool, StoredState
from controller.core.state import NEVER, AckStatus, ControllerState, Obligation, PoolState
from controller.model import DispatchInstruction, DispatchType, OverrideRequest

_STATUSES: tuple[AckStatus, ...] = ("accepted", "complied", "shortfall")


class RestoreError(ValueError):
    """A stored row this version cannot read: the store is treated as corrupt."""


def restore(stored: StoredState, started_at: float, pool_names: Iterable[str]) -> ControllerState:
    """The state a restarted controller continues from. Pools not configured any more are
    dropped; pools not stored are seeded by the first decision."""
    names = set(pool_names)
    pools = {n: _pool(p) for n, p in stored.pools.items() if n in names}
    return ControllerState(
        started_at=started_at,
        pools=pools,
        obligations=tuple(_obligation(key, doc) for key, doc in stored.obligations.items()),
        override=None if stored.override is None else _override(stored.override),
        trip_active=stored.trip_active,
        frequency_ok_since=stored.trip_ok_since,
        last_dispatch_at=started_at,
    )


def _pool(p: StoredPool) -> PoolState:
    # Not confirmed until telemetry says so; never commanded in this life (target_at NEVER), so
    # nothing is written to it unless a decision changes it (CONTRACT 7 Startup).
    return PoolState(
        target_kw=p.target_kw,
        seq=p.seq,
        on=p.on,
        changed_at=NEVER if p.changed_at is None else p.changed_at,
        confirmed=False,
        reason=p.reason,
        state="ramping",
    )


def delta(
    before: ControllerState | None,
    after: ControllerState,
    *,
    overrides_accepted: Iterable[OverrideRequest],
    nonce_keep_s: float,
    audit: list[AuditRecord],
) -> StoreDelta:
    """What changed since `before` (what the store holds), as one transaction; with `before`
    None (not known), every row: obligations, override and trip replaced, every pool."""
    d = StoreDelta(audit=audit)
    if before is None:
        before = ControllerState(started_at=after.started_at, trip_active=not after.trip_active)
        d.override_changed = True
        d.obligations = {}
    if after.obligations != before.obligations or d.obligations is not None:
        d.obligations = {_key(o): _dumps(_obligation_doc(o)) for o in after.obligations}
    if after.override != before.override or d.override_changed:
        d.override_changed = True
        d.override = None if after.override is None else _dumps(asdict(after.override))
    for request in overrides_accepted:
        d.nonces[request.nonce] = request.issued_at + nonce_keep_s
    for name, ps in after.pools.items():
        if ps.target_at == NEVER:
            # Not commanded in this life: a record seeded from telemetry is a guess, not a cmd
            # of ours (a restored one is in the store already). Only what was sent is kept, so
            # that what a restart republishes is what the agents were told.
            continue
        old = before.pools.get(name)
        if old is ps or (old is not None and _stored_fields(old) == _stored_fields(ps)):
            continue
        d.pools[name] = StoredPool(
            name=name,
            seq=ps.seq,
            target_kw=ps.target_kw,
            on=ps.on,
            changed_at=None if ps.changed_at == NEVER else ps.changed_at,
            reason=ps.reason,
        )
    trip = (after.trip_active, after.frequency_ok_since)
    if trip != (before.trip_active, before.frequency_ok_since):
        d.trip = trip
    return d


def _stored_fields(ps: PoolState) -> tuple[object, ...]:
    return (ps.seq, ps.target_kw, ps.on, ps.changed_at, ps.reason)


def _key(o: Obligation) -> str:
    # The EEA state is keyed apart from instruction ids (a QSE id "EEA" must not collide).
    return "eea" if o.instruction.type is DispatchType.EEA else f"id:{o.instruction.id}"


def _obligation_doc(o: Obligation) -> dict[str, Any]:
    instruction = asdict(o.instruction)
    instruction["type"] = o.instruction.type.value
    return {
        "id": o.id,
        "deadline": o.deadline,
        "status": o.status,
        "cap_kw": o.cap_kw,
        "floor_kw": o.floor_kw,
        "instruction": instruction,
    }


def _obligation(key: str, doc: str) -> Obligation:
    try:
        data = json.loads(doc)
        raw = dict(data["instruction"])
        raw["type"] = DispatchType(raw["type"])
        instruction = DispatchInstruction(**raw)
        return Obligation(
            id=str(data["id"]),
            instruction=instruction,
            deadline=float(data["deadline"]),
            status=_status(data["status"]),
            cap_kw=float(data["cap_kw"]),
            # Stores written before awards existed have no floor: 0 until the next decision.
            floor_kw=float(data.get("floor_kw", 0.0)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise RestoreError(f"obligation {key!r}: {exc}") from None


def _status(value: object) -> AckStatus:
    for status in _STATUSES:
        if value == status:
            return status
    raise ValueError(f"unknown status {value!r}")


def _override(doc: str) -> OverrideRequest:
    try:
        return OverrideRequest(**json.loads(doc))
    except (ValueError, TypeError) as exc:
        raise RestoreError(f"override: {exc}") from None


def _dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, sort_keys=True)
