"""`curtaild audit` on a real SQLite store written with the store API, as the daemon writes it.

The records carry the daemon's own event documents (`payloads.event`), so a change to what the
daemon writes that the export would misread shows up here.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from controller import cli
from controller.adapters.store import DB_NAME, AuditRecord, StateStore, StoreDelta
from controller.runtime import payloads
from tests.unit.config_support import MINIMAL
from tests.unit.store_support import digest

# 2024-01-16 18:00:00 America/Chicago (CST, -06:00)
T0 = datetime(2024, 1, 17, 0, 0, tzinfo=UTC).timestamp()
ID = "VDI-20240116-0042"


def _rec(at: float, kind: str, **fields: Any) -> AuditRecord:
    return AuditRecord(at, kind, payloads.event(kind, at, **fields).decode())


def _deployment() -> list[AuditRecord]:
    """An ECRS deployment as the daemon records it, with an unrelated one interleaved."""
    instruction = {
        "id": ID, "type": "ECRS", "mw": 1.0, "level": None,
        "notified_at": "2024-01-17T00:00:00.000+00:00",
        "received_at": "2024-01-17T00:00:00.100+00:00", "start": None, "end": None,
        "deadline_s": 600.0, "recall_id": None, "mining_kw_at_receipt": 5000.0,
    }  # fmt: skip
    ack = {"reason": None, "target_kw": 4000.0}
    return [
        _rec(
            T0 - 60,
            "decision",
            binding="price",
            mining_cap_kw=27000.0,
            price_usd_per_mwh=30.0,
            reasons=[],
        ),
        _rec(T0 + 0.1, "dispatch", **instruction),
        _rec(T0 + 0.1, "ack", id=ID, status="accepted", measured_kw=5000.0, **ack),
        _rec(
            T0 + 0.1,
            "decision",
            binding=f"dispatch:{ID}",
            mining_cap_kw=4000.0,
            price_usd_per_mwh=30.0,
            reasons=[],
        ),
        _rec(
            T0 + 0.1,
            "commands",
            binding=f"dispatch:{ID}",
            pools={"c01": {"seq": 7, "target_kw": 1000.0, "reason": f"dispatch:{ID}"}},
        ),
        _rec(
            T0 + 1.0,
            "ack",
            id="OTHER-1",
            status="accepted",
            reason=None,
            target_kw=0.0,
            measured_kw=0.0,
        ),
        _rec(T0 + 1.5, "device_down", device="pdu-c02", error="timeout", failures=3),
        _rec(T0 + 2.0, "ack", id=ID, status="complied", measured_kw=3990.0, **ack),
        _rec(T0 + 5.0, "rejected", feed="dispatch", reason="invalid", detail="mw", id="BAD-1"),
        _rec(
            T0 + 9.0,
            "commands",
            binding="price",
            pools={"c01": {"seq": 8, "target_kw": 3000.0, "reason": "price"}},
        ),
    ]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config whose state_dir holds a store with `_deployment()` in its audit trail."""
    state_dir = tmp_path / "state"
    with StateStore.open(state_dir / DB_NAME) as store:
        store.write(StoreDelta(audit=_deployment()))
    config = tmp_path / "curtaild.toml"
    config.write_text(MINIMAL + f'[control]\nstate_dir = "{state_dir}"\n')
    return config


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["audit", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_csv_has_fixed_columns_and_every_record_in_order(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "--config", str(site))
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["at", "kind", "id", "fields"]
    body = rows[1:]
    assert [r[1] for r in body] == [r.kind for r in _deployment()]
    assert body[1][0] == "2024-01-17T00:00:00.100+00:00"
    dispatch = body[1]
    assert dispatch[2] == ID
    fields = json.loads(dispatch[3])
    assert fields["mining_kw_at_receipt"] == 5000.0
    assert "id" not in fields and "event" not in fields and "at" not in fields
    assert body[8][2] == "BAD-1"  # a rejected message keeps its id
    assert body[6][2] == ""  # no id: empty cell


def test_jsonl_range_is_from_inclusive_to_exclusive(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(
        capsys, "--config", str(site), "--format", "jsonl",
        "--from", "2024-01-17T00:00:00.1Z", "--to", "2024-01-16T18:00:02-06:00",
    )  # fmt: skip
    assert code == 0
    records = _jsonl(out)
    assert [r["kind"] for r in records] == ["dispatch", "ack", "decision", "commands", "ack",
                                            "device_down"]  # fmt: skip
    assert records[0]["at"] == "2024-01-17T00:00:00.100+00:00"
    assert records[0]["id"] == ID and records[0]["mining_kw_at_receipt"] == 5000.0
    assert list(records[0])[:2] == ["at", "kind"]


def test_a_bare_date_is_midnight_in_texas(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Midnight America/Chicago of the 16th is 06:00 UTC: the record at 23:59 UTC on the 16th
    # is in, and --to 2024-01-16 (06:00 UTC) leaves everything out.
    _, out, _ = _run(capsys, "--config", str(site), "--format", "jsonl", "--from", "2024-01-16")
    assert len(_jsonl(out)) == len(_deployment())
    _, out, _ = _run(capsys, "--config", str(site), "--format", "jsonl", "--to", "2024-01-16")
    assert _jsonl(out) == []


def test_kinds_filter_and_out_file(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "acks.jsonl"
    code, out, err = _run(
        capsys, "--config", str(site), "--format", "jsonl", "--kind", "ack", "--kind",
        "rejected", "--out", str(target),
    )  # fmt: skip
    assert code == 0 and out == ""
    assert "4 record(s) written" in err
    records = _jsonl(target.read_text())
    assert [(r["kind"], r["id"]) for r in records] == [
        ("ack", ID), ("ack", "OTHER-1"), ("ack", ID), ("rejected", "BAD-1"),
    ]  # fmt: skip


def test_dispatch_proof_runs_from_receipt_to_compliance(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "--config", str(site), "--format", "jsonl", "--dispatch", ID)
    assert code == 0
    records = _jsonl(out)
    assert [r["kind"] for r in records] == ["dispatch", "ack", "decision", "commands", "ack"]
    assert records[0]["mining_kw_at_receipt"] == 5000.0
    assert [r["status"] for r in records if r["kind"] == "ack"] == ["accepted", "complied"]
    assert records[-1]["measured_kw"] == 3990.0
    # the summary goes to stderr, so stdout stays a clean export
    assert "baseline (mining at receipt) 5000.0 kW" in err
    assert "accepted: target 4000.0 kW" in err
    assert "complied: target 4000.0 kW, measured 3990.0 kW" in err


def test_dispatch_proof_without_compliance_runs_to_the_end_of_the_range(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(
        capsys, "--config", str(site), "--dispatch", ID, "--to", "2024-01-17T00:00:01Z"
    )
    assert code == 0
    kinds = [row[1] for row in list(csv.reader(io.StringIO(out)))[1:]]
    assert kinds == ["dispatch", "ack", "decision", "commands"]
    assert "not complied within the range" in err


def test_unknown_dispatch_id_is_exit_1(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "--config", str(site), "--dispatch", "NOPE")
    assert code == 1 and out == ""
    assert "no dispatch instruction 'NOPE'" in err and "--kind dispatch" in err


def test_missing_store_names_the_file_and_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(MINIMAL + f'[control]\nstate_dir = "{tmp_path / "nowhere"}"\n')
    code, _, err = _run(capsys, "--config", str(config))
    assert code == 1
    assert str(tmp_path / "nowhere" / DB_NAME) in err
    assert "control.state_dir" in err
    assert not (tmp_path / "nowhere").exists()  # a reader creates nothing


@pytest.mark.parametrize(
    "argv",
    [
        ["--from", "yesterday"],
        ["--to", "2024-13-01"],
        ["--from", "2024-01-17", "--to", "2024-01-16"],
        ["--format", "xml"],
    ],
)
def test_bad_arguments_are_exit_2(
    site: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    try:
        code = cli.main(["audit", "--config", str(site), *argv])
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert "ISO 8601" in err or "not before" in err or "invalid choice" in err


@pytest.fixture
def busy_daemon_store(site: Path) -> Iterator[StateStore]:
    """A second connection in the middle of a write, as the daemon is at any moment."""
    store = StateStore.open(site.parent / "state" / DB_NAME)
    conn = store._live()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO audit (at, kind, doc) VALUES (?, 'reloaded', '{}')", (T0 + 99,))
    try:
        yield store
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        store.close()


def test_reads_beside_a_writing_daemon_without_a_lock_or_a_write(
    site: Path, busy_daemon_store: StateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    db = site.parent / "state" / DB_NAME
    before = digest(db)
    code, out, _ = _run(capsys, "--config", str(site), "--format", "jsonl")
    assert code == 0
    assert len(_jsonl(out)) == len(_deployment())  # the uncommitted row is not seen
    assert digest(db) == before
    assert not (db.parent / "curtaild.lock").exists()
    busy_daemon_store._live().execute("COMMIT")  # the reader never held the writer up
    _, out, _ = _run(capsys, "--config", str(site), "--format", "jsonl", "--kind", "reloaded")
    assert len(_jsonl(out)) == 1


def test_a_foreign_file_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / DB_NAME
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.commit()
    conn.close()
    before = digest(db)
    config = tmp_path / "c.toml"
    config.write_text(MINIMAL + f'[control]\nstate_dir = "{tmp_path}"\n')
    code, _, err = _run(capsys, "--config", str(config))
    assert code == 1
    assert f"{db} is not a curtaild state store" in err
    assert digest(db) == before


def test_also_merges_the_other_nodes_trail_into_one_proof(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A pair ([ha]): the instruction received under node a, complied under node b after a
    takeover; each node's store holds its own leadership's records."""
    records = _deployment()
    a_until = T0 + 1.0  # a leads until then; b from its `leader` event on
    a_part = [r for r in records if r.at < a_until]
    b_part = [_rec(T0 + 1.2, "leader", state_from="replica", node="b", epoch=9)]
    b_part += [r for r in records if r.at >= a_until]
    state_a, b_db = tmp_path / "state", tmp_path / "b" / DB_NAME
    for path, part in ((state_a / DB_NAME, a_part), (b_db, b_part)):
        with StateStore.open(path) as store:
            store.write(StoreDelta(audit=part))
    config = tmp_path / "curtaild.toml"
    config.write_text(MINIMAL + f'[control]\nstate_dir = "{state_a}"\n')
    code, out, err = _run(capsys, "--config", str(config), "--format", "jsonl",
                          "--dispatch", ID, "--also", str(b_db))  # fmt: skip
    assert code == 0, err
    assert [r["kind"] for r in _jsonl(out)] == ["dispatch", "ack", "decision", "commands", "ack"]
    assert "complied: target 4000.0 kW, measured 3990.0 kW" in err
    code, out, _ = _run(capsys, "--config", str(config), "--format", "jsonl", "--also", str(b_db))
    merged = _jsonl(out)
    assert [r["kind"] for r in merged] == [r.kind for r in sorted(b_part + a_part, key=_at)]
    assert [r["at"] for r in merged] == sorted(r["at"] for r in merged)


def _at(record: AuditRecord) -> float:
    return record.at
