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


def parse_cmd(payload: bytes) -> Command | None:
    """A valid cmd, or None (not JSON, no integer seq >= 0, no finite target_kw >= 0)."""
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    seq, target = doc.get("seq"), doc.get("target_kw")
    # bool is an int subclass: a JSON true is neither a sequence number nor a power.
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        return None
    if not isinstance(target, int | float) or isinstance(target, bool):
        return None
    if not math.isfinite(target) or target < 0:
        return None
    return Command(seq, float(target))


def state_payload(state: dict[str, Any], now: float) -> bytes:
    at = datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="milliseconds")
    return json.dumps({**state, "at": at}, separators=(",", ":")).encode()
