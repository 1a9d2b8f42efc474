"""JSON documents the controller publishes (CONTRACT 2.2-2.5). Pure functions of their inputs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controller import __version__
from controller.clock import iso
from controller.core.plan import DispatchAck, Plan, Reason
from controller.core.state import Obligation
from controller.model import DispatchInstruction, DispatchType, OverrideRequest


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def status(
    state: str,
    since: float,
    failsafe: frozenset[str] = frozenset(),
    leader: Mapping[str, Any] | None = None,
) -> bytes:
    """`leader`: a pair's node and epoch (docs/ha.md), absent for a single daemon."""
    doc: dict[str, Any] = {"state": state, "since": iso(since), "version": __version__}
    if failsafe:
        doc["failsafe"] = sorted(failsafe)
    if leader:
        doc.update(leader)
    return dumps(doc)


def plan(p: Plan, leader: Mapping[str, Any] | None = None) -> bytes:
    pools = {
        name: {"target_kw": round(ps.target_kw, 3), "reason": ps.reason, "state": ps.state}
        for name, ps in p.pools.items()
    }
    return dumps(
        {
            "at": iso(p.at),
            "price_usd_per_mwh": p.price_usd_per_mwh,
            "mining_cap_kw": round(p.mining_cap_kw, 3),
            "binding": p.binding,
            "gpu_reserved_kw": round(p.gpu_reserved_kw, 3),
            "mining_target_kw": round(p.mining_target_kw, 3),
            "mining_measured_kw": round(p.mining_measured_kw, 3),
            "failsafe": sorted(p.failsafe),
            "pools": pools,
            **(leader or {}),
        }
    )


def reason_fields(r: Reason) -> dict[str, Any]:
    cap_kw = None if r.cap_kw is None else round(r.cap_kw, 1)
    return {"stage": r.stage, "cap_kw": cap_kw, "detail": r.detail}


def ack(a: DispatchAck, leader: Mapping[str, Any] | None = None) -> bytes:
    """`leader`: a pair's node and epoch, so that an ack of a deposed leader is not read as
    the site's (docs/ha.md 4); absent for a single daemon."""
    return dumps({**ack_fields(a), **(leader or {})})


def ack_fields(a: DispatchAck) -> dict[str, Any]:
    return {
        "id": a.id,
        "status": a.status,
        "reason": a.reason,
        "target_kw": None if a.target_kw is None else round(a.target_kw, 3),
        "measured_kw": None if a.measured_kw is None else round(a.measured_kw, 3),
        "at": iso(a.at),
    }


def instruction_fields(msg: DispatchInstruction) -> dict[str, Any]:
    """A dispatch instruction as received, with the level it is measured from (the audit)."""
    return {
        "id": msg.id,
        "type": msg.type.value,
        "mw": msg.mw,
        "level": msg.level,
        "notified_at": iso(msg.notified_at),
        "received_at": iso(msg.received_at),
        "start": iso(msg.start),
        "end": iso(msg.end),
        "deadline_s": msg.deadline_s,
        "recall_id": msg.recall_id,
        "product": msg.product,
        "mining_kw_at_receipt": round(msg.mining_kw_at_receipt, 3),
    }


def override_fields(request: OverrideRequest) -> dict[str, Any]:
    """An accepted override: who, why, what, until when (the audit)."""
    return {
        "mode": request.mode,
        "limit_kw": request.limit_kw,
        "expires_at": iso(request.expires_at),
        "operator": request.operator,
        "reason": request.reason,
        "issued_at": iso(request.issued_at),
        "nonce": request.nonce,
    }


def rejected_ack(
    msg_id: str | None, reason: str, at: float, leader: Mapping[str, Any] | None = None
) -> bytes:
    return dumps(
        {
            "id": msg_id,
            "status": "rejected",
            "reason": reason,
            "target_kw": None,
            "measured_kw": None,
            "at": iso(at),
            **(leader or {}),
        }
    )


def dispatch_state(
    obligations: tuple[Obligation, ...], leader: Mapping[str, Any] | None = None
) -> bytes:
    return dumps({"obligations": [_listed(o) for o in obligations], **(leader or {})})


def _listed(o: Obligation) -> dict[str, Any]:
    """One obligation in dispatch/state; an award holds a floor, not a cap (CONTRACT 2.2)."""
    msg = o.instruction
    if msg.type is DispatchType.AWARD:
        return {
            "id": o.id,
            "type": msg.type.value,
            "product": msg.product,
            "cap_kw": None,
            "floor_kw": round(o.floor_kw, 3),
            "mw": msg.mw,
            "start": iso(msg.start),
            "deadline": iso(o.deadline),
            "status": o.status,
            "end": iso(msg.end),
        }
    return {
        "id": o.id,
        "type": msg.type.value,
        "cap_kw": round(o.cap_kw, 3),
        "deadline": iso(o.deadline),
        "status": o.status,
        **({"level": msg.level} if msg.level is not None else {}),
        "end": iso(msg.end),
    }


def override_state(
    current: OverrideRequest | None,
    last_error: str | None,
    leader: Mapping[str, Any] | None = None,
) -> bytes:
    stamp = leader or {}
    if current is None:
        return dumps(
            {
                "active": False,
                "mode": "auto",
                "limit_kw": None,
                "expires_at": None,
                "operator": None,
                "reason": None,
                "last_error": last_error,
                **stamp,
            }
        )
    return dumps(
        {
            "active": True,
            "mode": current.mode,
            "limit_kw": current.limit_kw,
            "expires_at": iso(current.expires_at),
            "operator": current.operator,
            "reason": current.reason,
            "last_error": last_error,
            **stamp,
        }
    )


def event(kind: str, at: float, **fields: Any) -> bytes:
    return dumps({"event": kind, "at": iso(at), **fields})
