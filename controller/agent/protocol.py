"""The 2.4 documents the agent reads and writes: cmd in, state out."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Command:
    seq: int
    target_kw: float
    # The leadership that sent it (an active/standby pair, docs/ha.md): None from a single
    # controller, whose cmds are ordered by seq alone.
    epoch: int | None = None


def _count(value: object) -> int | None:
    """A JSON integer >= 0 (bool is an int subclass: a JSON true is no count)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None
    return value


def parse_cmd(payload: bytes) -> Command | None:
    """A valid cmd, or None (not JSON, no integer seq >= 0, no finite target_kw >= 0, an
    `epoch` present but not an integer >= 0)."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    seq, target = _count(doc.get("seq")), doc.get("target_kw")
    if seq is None:
        return None
    if not isinstance(target, int | float) or isinstance(target, bool):
        return None
    if not math.isfinite(target) or target < 0:
        return None
    epoch = None
    if "epoch" in doc:
        epoch = _count(doc["epoch"])
        if epoch is None:
            return None
    return Command(seq, float(target), epoch)


def admits(command: Command, applied_seq: int, epoch: int, fresh: bool) -> str:
    """Whether a cmd is carried out, given the last seq carried out, the highest epoch obeyed
    and whether none was carried out since this process started: "carry_out", "ignored" (a
    seq already carried out) or "fenced" (a deposed leader's: an epoch below one obeyed).

    Cmds are ordered by (epoch, seq): a new leadership starts its own seq, which need not be
    above a deposed leader's, so a higher epoch is carried out whatever its seq. A cmd with no
    epoch (a single controller) is ordered by seq alone: mixed fleets work, unfenced.
    """
    if command.epoch is not None:
        if command.epoch < epoch:
            return "fenced"
        if command.epoch > epoch:
            return "carry_out"
    if command.seq > applied_seq or (fresh and command.seq == applied_seq):
        return "carry_out"
    return "ignored"


def state_payload(state: dict[str, Any], now: float) -> bytes:
    at = datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="milliseconds")
    return json.dumps({**state, "at": at}, separators=(",", ":")).encode()
