"""The control state in etcd, written under the leader's epoch (docs/ha.md section 5).

What a takeover needs is what a restart needs (I6): the obligations with their baselines and
acks, the override, used nonces, each pool's seq, last target and dwell clock, the frequency
trip. The replica keeps exactly the rows of the local state store (StoredState), without the
audit trail, which stays local. It applies each decision's StoreDelta to its own copy and
writes the whole copy as one key with `fenced_put`: one operation whatever the site's size
(etcd caps a transaction at 128 operations by default; 1,000 pools are about 150 kB, under its
1.5 MB request limit), and a write that failed loses nothing, since the next one carries it all.

A write refused by the fence means a newer leader exists: `DeposedError`, and the caller stops
commanding at once. A write etcd did not answer is logged and retried with the next one; the
commands go out meanwhile, as they do when the local store is slow (loop.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, replace
from typing import Any

from controller.adapters.etcd import EtcdClient, EtcdError
from controller.adapters.store import StoreDelta, StoredPool, StoredState

logger = logging.getLogger("curtaild.ha")


class DeposedError(Exception):
    """A fenced write was refused: another node leads under a newer epoch."""


class ReplicaError(ValueError):
    """The replicated state cannot be read by this version."""


def empty_state() -> StoredState:
    return StoredState({}, None, {}, {}, False, None, {})


def apply_delta(state: StoredState, delta: StoreDelta, now: float) -> StoredState:
    """`state` with one decision's changes, as the local store applies them; nonces past their
    keep time are dropped (the store prunes them hourly: here the document stays small)."""
    nonces = {n: until for n, until in state.nonces.items() if until >= now}
    nonces.update(delta.nonces)
    trip_active, trip_ok_since = delta.trip if delta.trip is not None else (
        state.trip_active, state.trip_ok_since)  # fmt: skip
    return replace(
        state,
        obligations=dict(delta.obligations) if delta.obligations is not None else state.obligations,
        override=delta.override if delta.override_changed else state.override,
        nonces=nonces,
        pools={**state.pools, **delta.pools},
        trip_active=trip_active,
        trip_ok_since=trip_ok_since,
        meta={**state.meta, **delta.meta},
    )


def dumps(state: StoredState) -> str:
    doc = asdict(state)
    return json.dumps(doc, separators=(",", ":"), allow_nan=False, sort_keys=True)


def loads(text: str) -> StoredState:
    try:
        doc: dict[str, Any] = json.loads(text)
        return StoredState(
            obligations={str(k): str(v) for k, v in doc["obligations"].items()},
            override=None if doc["override"] is None else str(doc["override"]),
            nonces={str(k): float(v) for k, v in doc["nonces"].items()},
            pools={str(k): StoredPool(**v) for k, v in doc["pools"].items()},
            trip_active=bool(doc["trip_active"]),
            trip_ok_since=None if doc["trip_ok_since"] is None else float(doc["trip_ok_since"]),
            meta={str(k): str(v) for k, v in doc["meta"].items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReplicaError(f"replicated state unreadable: {exc!r}") from None


class Replica:
    def __init__(self, client: EtcdClient, leader_key: str, state_key: str) -> None:
        self.client = client
        self.leader_key = leader_key
        self.state_key = state_key
        self.state = empty_state()
        self.epoch = 0  # the leadership writes are fenced by; set at takeover
        self._writing = asyncio.Lock()  # writes in order; each carries the latest copy

    async def load(self) -> StoredState | None:
        """The state the last leader wrote; None when none was ever written (EtcdError when
        etcd does not answer: a takeover cannot proceed without knowing)."""
        kv = await self.client.get(self.state_key)
        return None if kv is None else loads(kv.value)

    async def start(self, epoch: int, state: StoredState) -> None:
        """Lead under `epoch` from `state`, written at once (a first leader's local state)."""
        self.epoch, self.state = epoch, state
        await self._write()

    async def write(self, delta: StoreDelta, now: float) -> None:
        """Apply and write; DeposedError when the fence refuses it."""
        control = replace(delta, audit=[])
        if control.empty():
            return
        self.state = apply_delta(self.state, control, now)
        await self._write()

    async def _write(self) -> None:
        async with self._writing:
            try:
                written = await self.client.fenced_put(
                    self.leader_key, self.epoch, {self.state_key: dumps(self.state)}
                )
            except EtcdError as exc:
                logger.warning("ha: state not replicated (%s); the next write carries it", exc)
                return
            if not written:
                raise DeposedError(f"epoch {self.epoch} no longer leads: its write was fenced")
