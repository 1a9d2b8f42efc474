"""`curtaild audit --config PATH`: the audit trail from the state store (CONTRACT 5).

The store is opened read-only (SQLite `mode=ro`), so this runs beside the daemon: it takes no
lock, migrates nothing and never blocks a write (WAL readers do not). Each record is one event
as the daemon published it on `{topic_prefix}/events`: `at`, `kind`, then its fields.

`--dispatch ID` is the proof of one deployment for settlement: the instruction as received with
the level it is measured from (`mining_kw_at_receipt`), its acks (accepted, complied or
shortfall, with `target_kw` and `measured_kw`), and the decisions, commands and device faults in
between, up to the first `complied` ack (or the end of the range).

`--also DB` (repeatable) merges another node's store by time: the two nodes of an active/standby
pair each keep the records of their own leadership (each record names its `node` and `epoch`),
so a deployment received by one node and complied under the other is proven from both.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import heapq
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from controller.adapters.store import DB_NAME, AuditRecord, StateStore
from controller.clock import iso
from controller.config import load_config
from controller.errors import CurtaildError, UsageError

CENTRAL = ZoneInfo("America/Chicago")
CSV_COLUMNS = ("at", "kind", "id", "fields")
# What the daemon writes (controller/runtime/report.py, observe.py, loop.py, app.py). A --kind
# outside it is allowed (a newer daemon may write more) but said, since it is usually a typo.
KNOWN_KINDS = frozenset(
    {
        "decision", "commands", "dispatch", "ack", "override", "escalated", "faulted",
        "tripped", "rejected", "device_up", "device_down", "failsafe", "internal_error",
        "curtail_all", "reloaded", "reload_refused", "protected_write_refused", "leader",
    }
)  # fmt: skip
# Besides the instruction's own records: what explains the load between receipt and compliance.
PROOF_CONTEXT = frozenset(
    {"decision", "commands", "escalated", "faulted", "tripped", "failsafe", "curtail_all"}
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit record, parsed: its JSON fields without the envelope (`event`, `at`)."""

    at: float
    kind: str
    fields: dict[str, Any]

    @property
    def id(self) -> str | None:
        value = self.fields.get("id")
        return value if isinstance(value, str) else None

    def jsonl(self) -> str:
        return json.dumps({"at": iso(self.at), "kind": self.kind, **self.fields})

    def csv_row(self) -> tuple[str, str, str, str]:
        rest = {k: v for k, v in self.fields.items() if k != "id"}
        return (iso(self.at) or "", self.kind, self.id or "", json.dumps(rest))


def audit_command(args: argparse.Namespace) -> int:
    from_at = parse_time(args.date_from, "--from")
    to_at = parse_time(args.date_to, "--to")
    if from_at is not None and to_at is not None and from_at >= to_at:
        raise UsageError(f"--from {args.date_from} is not before --to {args.date_to}")
    for kind in args.kinds or ():
        if kind not in KNOWN_KINDS:
            print(
                f"curtaild audit: note: --kind {kind} is not a kind this release writes "
                f"({', '.join(sorted(KNOWN_KINDS))})",
                file=sys.stderr,
            )
    config = load_config(args.config)
    path = Path(config.control.state_dir) / DB_NAME
    with contextlib.ExitStack() as stack:
        stores = [stack.enter_context(StateStore.open_readonly(p))
                  for p in (path, *(Path(a) for a in args.also))]  # fmt: skip
        # Each store's records come in time order: merged, the trails stay in time order.
        records = heapq.merge(*(s.audit(from_at, to_at) for s in stores), key=lambda r: r.at)
        entries: Iterable[Entry] = parse(records)
        if args.dispatch is not None:
            proof = dispatch_proof(entries, args.dispatch)
            if not proof:
                where = _range_text(args.date_from, args.date_to)
                raise CurtaildError(
                    f"no dispatch instruction {args.dispatch!r} in the audit trail of "
                    f"{' + '.join(str(p) for p in (path, *args.also))}{where}; list the "
                    "instructions with --kind dispatch"
                )
            print(summary(proof, args.dispatch), file=sys.stderr)
            entries = proof
        if args.kinds:
            wanted = set(args.kinds)
            entries = (e for e in entries if e.kind in wanted)
        if args.out:
            with Path(args.out).open("w", encoding="utf-8", newline="") as out:
                count = write(entries, args.format, out)
        else:
            count = write(entries, args.format, sys.stdout)
    if args.out:
        print(f"curtaild audit: {count} record(s) written to {args.out}", file=sys.stderr)
    return 0


def parse_time(text: str | None, option: str) -> float | None:
    """ISO 8601 to epoch s. A bare date is midnight America/Chicago, as is a time without offset
    (ERCOT's clock); a time with an offset or Z is taken as written."""
    if text is None:
        return None
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            return datetime.combine(day, time(0), tzinfo=CENTRAL).timestamp()
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not an ISO 8601 date or time: use 2024-01-16 (midnight "
            "America/Chicago), 2024-01-16T18:00 (America/Chicago) or 2024-01-16T18:00:00-06:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CENTRAL)
    return moment.timestamp()


def parse(records: Iterable[AuditRecord]) -> Iterator[Entry]:
    for record in records:
        try:
            doc = json.loads(record.doc)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            # The store checks JSON on write; a row edited by hand is shown, not dropped.
            yield Entry(record.at, record.kind, {"unparsable": record.doc})
            continue
        doc.pop("event", None)
        doc.pop("at", None)
        yield Entry(record.at, record.kind, doc)


def dispatch_proof(entries: Iterable[Entry], ident: str) -> list[Entry]:
    """The records proving one deployment, from its first receipt to its first `complied` ack.

    Empty when the instruction is not in `entries`.
    """
    proof: list[Entry] = []
    for entry in entries:
        own = entry.id == ident or entry.fields.get("recall_id") == ident
        if not proof:
            if entry.kind == "dispatch" and entry.id == ident:
                proof.append(entry)
            continue
        if own or entry.kind in PROOF_CONTEXT:
            proof.append(entry)
        if own and entry.kind == "ack" and entry.fields.get("status") == "complied":
            break
    return proof


def summary(proof: list[Entry], ident: str) -> str:
    """Three lines for a person: what was asked, from which level, and how it ended."""
    first = proof[0].fields
    head = (
        f"dispatch {ident}: {first.get('type')} mw={first.get('mw')} notified_at "
        f"{first.get('notified_at')}, received {first.get('received_at')}, baseline "
        f"(mining at receipt) {first.get('mining_kw_at_receipt')} kW"
    )
    lines = [head]
    acks = [e for e in proof if e.kind == "ack" and e.id == ident]
    for ack in acks:
        f = ack.fields
        lines.append(
            f"  {iso(ack.at)} {f.get('status')}: target {f.get('target_kw')} kW, measured "
            f"{f.get('measured_kw')} kW" + (f" ({f['reason']})" if f.get("reason") else "")
        )
    if not any(a.fields.get("status") == "complied" for a in acks):
        lines.append("  not complied within the range")
    return "\n".join(lines)


def write(entries: Iterable[Entry], fmt: str, out: TextIO) -> int:
    count = 0
    if fmt == "jsonl":
        for entry in entries:
            out.write(entry.jsonl() + "\n")
            count += 1
        return count
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        writer.writerow(entry.csv_row())
        count += 1
    return count


def _range_text(date_from: str | None, date_to: str | None) -> str:
    if date_from is None and date_to is None:
        return ""
    return f" from {date_from or 'the start'} to {date_to or 'the end'}"
