"""What durability costs on the reaction path: AsyncStateStore.write() median and p99.

Two deltas, as the runtime writes them before the commands of a decision go out:
- typical: the obligation set replaced (one active ECRS), 12 pools changed, 3 audit records
  (decision, commands, ack);
- 200 pools: the same with 200 pools changed (the commands record lists all 200).
Each is written on the disk under /tmp and under /var/lib (where `control.state_dir` lives by
default, /var/lib/curtaild), into a store already holding `--audit-rows` audit records.

The async figure is the caller's view: from `await store.write(delta)` to its return on the
event loop (thread hop + transaction + fsync). For reference, the same transaction run directly
on a StateStore with synchronous=FULL (what we ship) and with synchronous=NORMAL (no fsync at
commit: the price of durability is the difference). Then open() time (quick_check reads every
page) and prune() of a large backlog, both of which block the store's one worker thread.

Run: `.venv/bin/python bench/bench_store.py` (`--quick` for a tenth; `--no-write` skips
RESULTS.md). Do not run it next to tests: it measures the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from controller.adapters.store import (
    DB_NAME,
    AsyncStateStore,
    AuditRecord,
    StateStore,
    StoreDelta,
    StoredPool,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results import write_section  # noqa: E402

T0 = 1_700_000_000.0
DAY_S = 86400.0
ROUNDS = 5


@dataclass(frozen=True)
class Row:
    where: str
    case: str
    how: str
    iterations: int
    median_ms: float
    p99_ms: float
    max_ms: float


def decision_delta(n_pools: int, step: int) -> StoreDelta:
    """One decision's changes: every pool re-commanded with a new seq, and its event records."""
    at = T0 + step
    pools = {
        f"p{i:03d}": StoredPool(
            f"p{i:03d}", step + 1, 84.0 * (step % 2), step % 2 == 1, at, "price"
        )
        for i in range(n_pools)
    }
    obligation = {"id": "VDI-20240116-0042", "type": "ECRS", "mw": 8.0, "baseline_kw": 34_300.0,
                  "received_at": T0, "deadline": T0 + 600.0, "status": "accepted"}  # fmt: skip
    decision = {"at": at, "kind": "decision", "price_usd_per_mwh": 1174.66,
                "mining_cap_kw": 26_300.0, "binding": "dispatch:VDI-20240116-0042",
                "gpu_reserved_kw": 20_000.0}  # fmt: skip
    commands = {"at": at, "kind": "commands",
                "pools": {n: {"seq": p.seq, "target_kw": p.target_kw, "reason": p.reason}
                          for n, p in pools.items()}}  # fmt: skip
    ack = {"at": at, "kind": "ack", "id": "VDI-20240116-0042", "status": "accepted",
           "target_kw": 26_300.0, "measured_kw": 34_300.0}  # fmt: skip
    return StoreDelta(
        obligations={"VDI-20240116-0042": json.dumps(obligation)},
        pools=pools,
        audit=[AuditRecord(at, str(r["kind"]), json.dumps(r)) for r in (decision, commands, ack)],
    )


def fill_audit(path: Path, rows: int) -> None:
    """Pre-fill the audit trail (about 300-byte records, one every 10 s)."""
    doc = json.dumps({"kind": "commands", "pad": "x" * 260})
    with StateStore.open(path) as store:
        for start in range(0, rows, 50_000):
            batch = [AuditRecord(T0 - (rows - i) * 10.0, "commands", doc)
                     for i in range(start, min(rows, start + 50_000))]  # fmt: skip
            store.write(StoreDelta(audit=batch))


def summarize(where: str, case: str, how: str, ns: list[int]) -> Row:
    ns = sorted(ns)
    p99 = ns[min(len(ns) - 1, round(0.99 * (len(ns) - 1)))]
    return Row(where, case, how, len(ns), statistics.median(ns) / 1e6, p99 / 1e6, ns[-1] / 1e6)


# The variants are timed in rounds (a block of writes to each in turn) so that load from other
# processes drifting over the run hits all of them alike, while only one store is written at a
# time (one store's checkpoint must not land inside another's commit). The last three are
# reference points, not what we ship.
VARIANTS = (
    ("async, FULL", ()),
    ("sync, FULL", ()),
    ("sync, NORMAL", ("PRAGMA synchronous = NORMAL",)),
    ("sync, FULL, no auto-checkpoint", ("PRAGMA wal_autocheckpoint = 0",)),
)


async def time_case(
    base: Path, n_pools: int, iterations: int, warmup: int, audit_rows: int
) -> list[list[int]]:
    """Nanoseconds per write for each of VARIANTS, on stores of their own under `base`."""
    paths = [base / f"{n_pools}-{k}" / DB_NAME for k in range(len(VARIANTS))]
    for path in paths:
        fill_audit(path, audit_rows)
    async_store = await AsyncStateStore.open(paths[0])
    sync_stores = [StateStore.open(path) for path in paths[1:]]
    for store, (_, pragmas) in zip(sync_stores, VARIANTS[1:], strict=True):
        conn = store._conn  # bench only: the reference variants change the connection's pragmas
        assert conn is not None
        for pragma in pragmas:
            conn.execute(pragma)
    times: list[list[int]] = [[] for _ in VARIANTS]
    block = max(1, iterations // ROUNDS)
    try:
        for first in range(0, warmup + iterations, block):
            steps = range(first, min(first + block, warmup + iterations))
            for step in steps:
                delta = decision_delta(n_pools, step)
                start = time.perf_counter_ns()
                await async_store.write(delta)
                times[0].append(time.perf_counter_ns() - start)
            for k, store in enumerate(sync_stores, start=1):
                for step in steps:
                    delta = decision_delta(n_pools, step)
                    start = time.perf_counter_ns()
                    store.write(delta)
                    times[k].append(time.perf_counter_ns() - start)
    finally:
        await async_store.close()
        for store in sync_stores:
            store.close()
    return [ns[warmup:] for ns in times]


def io_pressure() -> str:
    """Share of the last minute some task waited on I/O (Linux PSI), the noise that matters."""
    try:
        line = Path("/proc/pressure/io").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "I/O pressure unknown"
    fields = dict(part.split("=") for part in line.split()[1:])
    return f"I/O pressure {fields.get('avg60', '?')}% (some, 60 s)"


def timed_once(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000.0


def open_and_prune(base: Path, audit_rows: int) -> list[str]:
    """open() (quick_check) and prune() of a backlog, on a store of `audit_rows` records."""
    path = base / "big" / DB_NAME
    fill_audit(path, audit_rows)
    size_mb = path.stat().st_size / 1e6
    open_ms = timed_once(lambda: StateStore.open(path).close())
    with StateStore.open(path) as store:
        now = T0  # rows span audit_rows x 10 s before T0: prune the older half
        retention_days = audit_rows * 10.0 / 2 / DAY_S
        prune_ms = timed_once(lambda: store.prune(now, retention_days))
    return [
        (
            f"- open() of a store with {audit_rows:,} audit records ({size_mb:.0f} MB): "
            f"{open_ms:.0f} ms (quick_check reads every page)"
        ),
        f"- prune() removing {audit_rows // 2:,} of them in one transaction: {prune_ms:.0f} ms",
    ]


def table(rows: list[Row]) -> str:
    lines = [
        "| disk | delta | call | iterations | median ms | p99 ms | max ms |",
        "|:-----|:------|:-----|-----------:|----------:|-------:|-------:|",
    ]
    lines += [
        f"| {r.where} | {r.case} | {r.how} | {r.iterations} | {r.median_ms:.2f} "
        f"| {r.p99_ms:.2f} | {r.max_ms:.2f} |"
        for r in rows
    ]
    return "\n".join(lines)


def run(iterations: int, warmup: int, audit_rows: int) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    for where in ("/tmp", "/var/lib"):
        base = Path(tempfile.mkdtemp(prefix="curtaild-bench-store-", dir=where))
        try:
            for case, n_pools in (("typical (12 pools)", 12), ("200 pools", 200)):
                per_variant = asyncio.run(time_case(base, n_pools, iterations, warmup, audit_rows))
                for (how, _), ns in zip(VARIANTS, per_variant, strict=True):
                    row = summarize(where, case, how, ns)
                    rows.append(row)
                    print(f"{where:<9} {case:<19} {how:<31} median {row.median_ms:6.2f} ms  "
                          f"p99 {row.p99_ms:6.2f} ms  max {row.max_ms:6.2f} ms")  # fmt: skip
            if where == "/var/lib":
                notes += open_and_prune(base, 10 * audit_rows)
        finally:
            shutil.rmtree(base)
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="a tenth of the iterations")
    parser.add_argument("--audit-rows", type=int, default=100_000, help="audit rows pre-filled")
    args = parser.parse_args()
    load_1m, pressure = os.getloadavg()[0], io_pressure()
    scale = 10 if args.quick else 1
    rows, notes = run(1000 // scale, 50 // scale, args.audit_rows // scale)
    print()
    print(table(rows))
    print("\n".join(notes))
    if args.no_write:
        return
    flags = " --quick" if args.quick else ""
    body = "\n".join(
        [
            "`async, FULL` is what the daemon pays: from `await AsyncStateStore.write(delta)` to",
            "its return on the event loop (hop to the store's thread, one transaction, fsync of",
            "the WAL). The rest are references on stores of their own, timed in rounds with it",
            f"({ROUNDS} blocks of writes each, in turn): `sync` runs the transaction on the",
            "calling thread; `NORMAL` skips the fsync at commit (the difference is the price",
            "of durability); `no auto-checkpoint` shows what SQLite's WAL checkpoints (one per",
            "1000 log pages, inside whichever commit crosses the mark) add to the tail.",
            "typical: obligation set replaced, 12 pools changed, 3 audit records; 200 pools:",
            "the same with 200 pools (a 200-pool commands record). Each store holds",
            f"{args.audit_rows // scale:,} audit records first. /tmp and /var/lib are the same",
            "ext4 filesystem on this machine (a VM's virtio disk: its fsync may stop at the",
            "host's cache; rerun on site hardware before trusting the FULL figures).",
            f"At start: 1-minute load average {load_1m:.2f}, {pressure} (a shared",
            "machine: medians hold from run to run, p99 and max follow other processes' I/O).",
            "",
            table(rows),
            "",
            *notes,
        ]
    )
    write_section("State store writes (bench/bench_store.py)", body,
                  f".venv/bin/python bench/bench_store.py{flags}")  # fmt: skip
    print("\nwrote the state store section of bench/RESULTS.md")


if __name__ == "__main__":
    main()
