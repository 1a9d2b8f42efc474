"""The replica's document: each decision's StoreDelta applied as the local store applies it."""

from __future__ import annotations

import pytest

from controller.adapters.store import StoreDelta, StoredPool
from controller.ha.replica import ReplicaError, apply_delta, dumps, empty_state, loads

POOL = StoredPool("a1", seq=4, target_kw=1200.0, on=True, changed_at=100.0, reason="price")


def test_deltas_accumulate_and_survive_the_round_trip() -> None:
    state = apply_delta(
        empty_state(),
        StoreDelta(
            obligations={"id:E1": '{"id":"E1"}'},
            override_changed=True,
            override='{"mode":"curtail"}',
            nonces={"n1": 500.0},
            pools={"a1": POOL},
            trip=(True, None),
            meta={"k": "v"},
        ),
        now=100.0,
    )
    later = apply_delta(
        state,
        StoreDelta(
            pools={"a2": StoredPool("a2", 1, 0.0, False, None, "price")}, nonces={"n2": 900.0}
        ),
        now=200.0,
    )
    assert later.obligations == {"id:E1": '{"id":"E1"}'}  # untouched by a delta without them
    assert later.override == '{"mode":"curtail"}'
    assert set(later.pools) == {"a1", "a2"} and later.pools["a1"] == POOL
    assert later.trip_active is True
    assert loads(dumps(later)) == later


def test_a_full_obligation_set_replaces_and_a_cleared_override_clears() -> None:
    state = apply_delta(empty_state(), StoreDelta(obligations={"id:E1": "{}"}), 0.0)
    state = apply_delta(state, StoreDelta(obligations={}, override_changed=True), 0.0)
    assert state.obligations == {} and state.override is None


def test_expired_nonces_leave_the_document() -> None:
    state = apply_delta(empty_state(), StoreDelta(nonces={"old": 50.0, "new": 500.0}), 0.0)
    state = apply_delta(state, StoreDelta(meta={"x": "y"}), now=100.0)
    assert state.nonces == {"new": 500.0}


@pytest.mark.parametrize("text", ["", "[]", '{"obligations": {}}', '{"pools": 3}'])
def test_an_unreadable_document_is_an_error_not_an_empty_state(text: str) -> None:
    with pytest.raises(ReplicaError):
        loads(text)
