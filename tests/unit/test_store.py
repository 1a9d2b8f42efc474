"""State store behaviour on real SQLite files: round trips, atomic deltas, values, retention, audit.

Opening, migrations and refused files are in test_store_open.py; durability across SIGKILL and
the asyncio wrapper in test_store_durability.py.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.adapters import store as store_module
from controller.adapters import store_sql
from controller.adapters.store import (
    DB_NAME,
    AuditRecord,
    StateStore,
    StoreDelta,
    StoredPool,
    StoreError,
)
from tests.unit.store_support import T0, ecrs_doc, full_delta, state_of


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / DB_NAME


@pytest.fixture
def store(db: Path) -> Iterator[StateStore]:
    opened = StateStore.open(db)
    try:
        yield opened
    finally:
        opened.close()


def test_every_field_round_trips_and_survives_reopen(db: Path, store: StateStore) -> None:
    delta = full_delta()
    store.write(delta)
    assert store.load() == state_of(delta)
    store.close()
    with StateStore.open(db) as again:
        assert again.load() == state_of(delta)
        assert list(again.audit()) == delta.audit


def test_pools_and_meta_are_upserted(store: StateStore) -> None:
    store.write(full_delta())
    moved = StoredPool("c01", 18, 0.0, False, T0 + 5.0, "dispatch:VDI-1")
    added = StoredPool("c03", 1, 250.0, True, T0 + 5.0, "ramp")
    store.write(StoreDelta(pools={"c01": moved, "c03": added}, meta={"last_raise_at": "x"}))
    state = store.load()
    assert state.pools == {"c01": moved, "c02": full_delta().pools["c02"], "c03": added}
    assert state.meta == {"last_raise_at": "x", "empty": ""}


def test_obligations_replace_the_whole_set(store: StateStore) -> None:
    store.write(StoreDelta(obligations={"A": ecrs_doc("A", 1.0), "B": ecrs_doc("B", 2.0)}))
    store.write(StoreDelta(obligations={"C": ecrs_doc("C", 3.0)}))
    assert store.load().obligations == {"C": ecrs_doc("C", 3.0)}
    store.write(StoreDelta(meta={"k": "v"}))  # obligations None: left as they are
    assert store.load().obligations == {"C": ecrs_doc("C", 3.0)}
    store.write(StoreDelta(obligations={}))  # the last one recalled
    assert store.load().obligations == {}


def test_override_is_set_kept_and_cleared(store: StateStore) -> None:
    doc = '{"mode": "limit", "limit_kw": 12000}'
    store.write(StoreDelta(override_changed=True, override=doc))
    store.write(StoreDelta(override="ignored without override_changed", meta={"k": "v"}))
    assert store.load().override == doc
    store.write(StoreDelta(override_changed=True, override=None))
    assert store.load().override is None


def test_trip_row_is_replaced_and_kept(store: StateStore) -> None:
    store.write(StoreDelta(trip=(True, None)))
    assert (store.load().trip_active, store.load().trip_ok_since) == (True, None)
    store.write(StoreDelta(trip=(True, T0 + 3.5)))
    store.write(StoreDelta(meta={"k": "v"}))  # trip None: unchanged
    assert (store.load().trip_active, store.load().trip_ok_since) == (True, T0 + 3.5)
    store.write(StoreDelta(trip=(False, None)))
    assert (store.load().trip_active, store.load().trip_ok_since) == (False, None)


def test_a_nonce_is_never_kept_for_less_than_promised(store: StateStore) -> None:
    store.write(StoreDelta(nonces={"n1": T0 + 240.0}))
    store.write(StoreDelta(nonces={"n1": T0 + 60.0, "n2": T0 + 10.0}))
    assert store.load().nonces == {"n1": T0 + 240.0, "n2": T0 + 10.0}
    store.write(StoreDelta(nonces={"n1": T0 + 500.0}))
    assert store.load().nonces["n1"] == T0 + 500.0


def test_an_injected_sql_failure_leaves_nothing_of_the_delta(db: Path, store: StateStore) -> None:
    before_delta = StoreDelta(
        obligations={"OLD": ecrs_doc("OLD", 5.0)},
        pools={"c01": StoredPool("c01", 3, 100.0, True, T0, "price")},
        audit=[AuditRecord(T0, "decision", "{}")],
    )
    store.write(before_delta)
    before = store.load()
    # The audit rows are inserted last, so this fails after every other statement succeeded.
    side = sqlite3.connect(db)
    side.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON audit WHEN NEW.kind = 'boom'"
        " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    side.commit()
    side.close()
    delta = full_delta()
    delta.audit.append(AuditRecord(T0 + 1.0, "boom", "{}"))
    with pytest.raises(StoreError, match="injected failure") as caught:
        store.write(delta)
    assert str(db) in str(caught.value)
    assert store.load() == before
    assert list(store.audit()) == before_delta.audit
    store.write(StoreDelta(meta={"after": "ok"}))  # no transaction was left open
    assert store.load().meta == {"after": "ok"}


def test_an_exception_before_commit_rolls_everything_back(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write(StoreDelta(meta={"k": "before"}))

    def apply_then_fail(conn: sqlite3.Connection, delta: StoreDelta) -> None:
        store_sql.apply_delta(conn, delta)  # every statement has run; only the COMMIT is missing
        raise RuntimeError("crash between the statements and the commit")

    monkeypatch.setattr(store_module, "apply_delta", apply_then_fail)
    with pytest.raises(RuntimeError, match="between the statements"):
        store.write(full_delta())
    monkeypatch.undo()
    assert store.load().meta == {"k": "before"}
    assert store.load().pools == {}
    assert list(store.audit()) == []


def _bad(**changes: object) -> StoreDelta:
    return dataclasses.replace(full_delta(), **changes)  # type: ignore[arg-type]


def _pool(**changes: object) -> dict[str, StoredPool]:
    return {"c01": dataclasses.replace(full_delta().pools["c01"], **changes)}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("delta", "field"),
    [
        (_bad(pools=_pool(target_kw=math.nan)), "pools['c01'].target_kw"),
        (_bad(pools=_pool(target_kw=-1.0)), "pools['c01'].target_kw"),
        (_bad(pools=_pool(changed_at=math.inf)), "pools['c01'].changed_at"),
        (_bad(pools=_pool(seq=-1)), "pools['c01'].seq"),
        (_bad(pools=_pool(seq=2**63)), "pools['c01'].seq"),
        (_bad(pools=_pool(seq=True)), "pools['c01'].seq"),
        (_bad(pools=_pool(name="c99")), "pools['c01']"),
        (_bad(nonces={"n": -math.inf}), "nonces['n']"),
        (_bad(trip=(True, math.nan)), "trip ok_since"),
        (_bad(override="{not json"), "override"),
        (_bad(obligations={"VDI-1": '{"mw": NaN}'}), "obligations['VDI-1']"),
        (_bad(audit=[AuditRecord(math.nan, "decision", "{}")]), "audit[0].at"),
        (_bad(audit=[AuditRecord(T0, "ack", "Infinity")]), "audit[0].doc"),
        (_bad(audit=[AuditRecord(T0, "", "{}")]), "audit[0].kind"),
        (_bad(meta={"k": None}), "meta['k']"),
        # json.loads('"\\ud800"') yields a lone surrogate: valid JSON, but not storable UTF-8.
        (_bad(obligations={"\ud800": "{}"}), "obligations key '\\ud800'"),
        (_bad(audit=[AuditRecord(T0, "ack", '"\ud800"')]), "audit[0].doc"),
        (_bad(pools=_pool(reason="x\udfff")), "pools['c01'].reason"),
    ],
)
def test_bad_values_are_refused_before_any_sql(
    store: StateStore, delta: StoreDelta, field: str
) -> None:
    statements: list[str] = []
    conn = store._conn
    assert conn is not None
    conn.set_trace_callback(statements.append)
    with pytest.raises(ValueError, match="^" + re.escape(field)):
        store.write(delta)
    conn.set_trace_callback(None)
    assert statements == []
    assert store.load() == state_of(StoreDelta())


def test_an_empty_delta_runs_no_transaction(store: StateStore) -> None:
    assert StoreDelta().empty()
    assert not StoreDelta(override_changed=True).empty()
    assert not StoreDelta(obligations={}).empty()
    statements: list[str] = []
    conn = store._conn
    assert conn is not None
    conn.set_trace_callback(statements.append)
    store.write(StoreDelta())
    conn.set_trace_callback(None)
    assert statements == []


def test_prune_drops_expired_nonces_and_old_audit_rows(store: StateStore) -> None:
    day_s = 86400.0
    now = T0 + 400 * day_s
    store.write(
        StoreDelta(
            nonces={"gone": now - 0.001, "edge": now, "kept": now + 60.0},
            audit=[
                AuditRecord(T0 - 1.0, "decision", '{"n": 0}'),
                AuditRecord(T0, "decision", '{"n": 1}'),  # exactly 400 days old: kept
                AuditRecord(now, "ack", '{"n": 2}'),
            ],
        )
    )
    assert store.prune(now, 400.0) == (1, 1)
    assert set(store.load().nonces) == {"edge", "kept"}
    assert [r.doc for r in store.audit()] == ['{"n": 1}', '{"n": 2}']
    assert store.prune(now, 400.0) == (0, 0)
    assert store.prune(now + 61.0, 0.0) == (2, 2)
    with pytest.raises(ValueError, match="audit_retention_days"):
        store.prune(now, -1.0)
    with pytest.raises(ValueError, match="now"):
        store.prune(math.nan, 400.0)


def test_audit_range_is_from_inclusive_to_exclusive_in_insertion_order(
    store: StateStore,
) -> None:
    # Three writes, interleaving times: order must be by `at`, then by insertion.
    store.write(StoreDelta(audit=[AuditRecord(20.0, "a", '"1"'), AuditRecord(10.0, "a", '"2"')]))
    store.write(StoreDelta(audit=[AuditRecord(20.0, "b", '"3"'), AuditRecord(30.0, "b", '"4"')]))
    store.write(StoreDelta(audit=[AuditRecord(10.0, "c", '"5"'), AuditRecord(20.0, "c", '"6"')]))

    def docs(lo: float | None = None, hi: float | None = None) -> list[str]:
        return [r.doc for r in store.audit(lo, hi)]

    assert docs() == ['"2"', '"5"', '"1"', '"3"', '"6"', '"4"']
    assert docs(20.0) == ['"1"', '"3"', '"6"', '"4"']
    assert docs(None, 20.0) == ['"2"', '"5"']
    assert docs(10.0, 30.0) == ['"2"', '"5"', '"1"', '"3"', '"6"']
    assert docs(20.0, 20.0) == []
    assert docs(31.0) == []
    with pytest.raises(ValueError, match="from_at"):
        store.audit(math.nan)


def test_audit_range_reads_the_at_index_without_sorting(db: Path, store: StateStore) -> None:
    conn = sqlite3.connect(db)
    plan = " ".join(
        str(row[-1])
        for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT at, kind, doc FROM audit"
            " WHERE at >= ? AND at < ? ORDER BY at, id",
            (0.0, 1.0),
        )
    )
    conn.close()
    assert "audit_at" in plan
    assert "TEMP B-TREE" not in plan


def test_audit_streams_more_rows_than_one_batch(store: StateStore) -> None:
    records = [AuditRecord(float(i // 3), "commands", f'{{"i": {i}}}') for i in range(1_234)]
    store.write(StoreDelta(audit=records))
    assert list(store.audit()) == records


def test_closed_store_refuses_calls(store: StateStore) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        store.load()
    with pytest.raises(RuntimeError, match="closed"):
        store.write(StoreDelta(meta={"k": "v"}))
