"""Property: any sequence of valid deltas and prunes leaves the store equal to a plain-dict model.

Every value `check_delta` accepts (any finite float, any int seq up to 2**63-1, any text
without lone surrogates, NUL included, any JSON document) is stored and read back exactly,
across a close and reopen, and the audit range query agrees with a filter over the model.
Each example uses a fresh store file and fsyncs every write, so it runs a twentieth of the
profile's examples (50 by default, 1,000 under `make fuzz`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.adapters.store import (
    DB_NAME,
    AuditRecord,
    StateStore,
    StoreDelta,
    StoredPool,
    StoredState,
)

finite = st.floats(allow_nan=False, allow_infinity=False)
texts = st.text(max_size=12)
keys = st.text(min_size=1, max_size=8)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
json_docs = st.builds(json.dumps, json_values, ensure_ascii=st.booleans())


@st.composite
def pools(draw: st.DrawFn) -> dict[str, StoredPool]:
    names = draw(st.lists(keys, max_size=4, unique=True))
    return {
        name: StoredPool(
            name=name,
            seq=draw(st.integers(0, 2**63 - 1)),
            target_kw=draw(st.floats(min_value=0.0, allow_infinity=False)),
            on=draw(st.booleans()),
            changed_at=draw(st.none() | finite),
            reason=draw(texts),
        )
        for name in names
    }


deltas = st.builds(
    StoreDelta,
    obligations=st.none() | st.dictionaries(keys, json_docs, max_size=3),
    override_changed=st.booleans(),
    override=st.none() | json_docs,
    nonces=st.dictionaries(keys, finite, max_size=3),
    pools=pools(),
    trip=st.none() | st.tuples(st.booleans(), st.none() | finite),
    meta=st.dictionaries(keys, texts, max_size=3),
    audit=st.lists(st.builds(AuditRecord, finite, keys, json_docs), max_size=4),
)
prunes = st.tuples(st.floats(-1e12, 1e12), st.floats(0.0, 1e4))
operations = st.lists(deltas | prunes, min_size=1, max_size=6)


@dataclass
class Model:
    obligations: dict[str, str] = field(default_factory=dict)
    override: str | None = None
    nonces: dict[str, float] = field(default_factory=dict)
    pools: dict[str, StoredPool] = field(default_factory=dict)
    trip: tuple[bool, float | None] = (False, None)
    meta: dict[str, str] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)

    def write(self, delta: StoreDelta) -> None:
        if delta.obligations is not None:
            self.obligations = dict(delta.obligations)
        if delta.override_changed:
            self.override = delta.override
        for nonce, keep_until in delta.nonces.items():
            self.nonces[nonce] = max(keep_until, self.nonces.get(nonce, keep_until))
        self.pools.update(delta.pools)
        self.trip = delta.trip if delta.trip is not None else self.trip
        self.meta.update(delta.meta)
        self.audit += delta.audit

    def prune(self, now: float, days: float) -> tuple[int, int]:
        cutoff = now - days * 86400.0
        kept_nonces = {n: t for n, t in self.nonces.items() if not t < now}
        kept_audit = [r for r in self.audit if not r.at < cutoff]
        removed = (len(self.nonces) - len(kept_nonces), len(self.audit) - len(kept_audit))
        self.nonces, self.audit = kept_nonces, kept_audit
        return removed

    def state(self) -> StoredState:
        return StoredState(
            dict(self.obligations), self.override, dict(self.nonces), dict(self.pools),
            self.trip[0], self.trip[1], dict(self.meta),
        )  # fmt: skip

    def audit_between(self, low: float | None, high: float | None) -> list[AuditRecord]:
        ordered = sorted(self.audit, key=lambda r: r.at)  # stable: insertion order on ties
        return [
            r for r in ordered if (low is None or r.at >= low) and (high is None or r.at < high)
        ]


@settings(max_examples=max(20, settings().max_examples // 20))
@given(operations, st.none() | finite, st.none() | finite)
def test_property_store_matches_a_model(
    ops: list[Any], low: float | None, high: float | None
) -> None:
    with tempfile.TemporaryDirectory(prefix="curtaild-store-model-") as tmp:
        path = Path(tmp) / DB_NAME
        model = Model()
        with StateStore.open(path) as store:
            for op in ops:
                if isinstance(op, StoreDelta):
                    store.write(op)
                    model.write(op)
                else:
                    assert store.prune(*op) == model.prune(*op)
                assert store.load() == model.state()
        with StateStore.open(path) as store:
            assert store.load() == model.state()
            assert list(store.audit()) == model.audit_between(None, None)
            assert list(store.audit(low, high)) == model.audit_between(low, high)
