"""Documents a test sends the daemon: price records (CONTRACT 2.1), dispatch instructions
(2.2), override requests (2.3), and config files edited as text (a reload test must be able to
write a file the loader refuses)."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from controller.feeds.override import sign_override

CENTRAL = ZoneInfo("America/Chicago")


def iso_at(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


def sced(price: float, at: float | None = None, point: str = "HB_WEST") -> str:
    """One NP6-788-CD record stamped `at` (default now), Central prevailing time."""
    stamp = time.time() if at is None else at
    local = time.strftime("%Y-%m-%dT%H:%M:%S", _central(stamp))
    return json.dumps({"SCEDTimestamp": local, "repeatHourFlag": False,
                       "settlementPoint": point, "LMP": price})  # fmt: skip


def _central(epoch: float) -> time.struct_time:
    return datetime.fromtimestamp(epoch, UTC).astimezone(CENTRAL).timetuple()


def iso_now(offset_s: float = 0.0) -> str:
    return iso_at(time.time() + offset_s)


# -- documents of CONTRACT 2.2 and 2.3 ---------------------------------------------------------


def ecrs(msg_id: str, mw: float, **extra: Any) -> dict[str, Any]:
    return {"id": msg_id, "type": "ECRS", "mw": mw, "notified_at": iso_at(time.time()), **extra}


def clr(msg_id: str, mw: float, **extra: Any) -> dict[str, Any]:
    return {"id": msg_id, "type": "CLR", "mw": mw, "notified_at": iso_at(time.time()), **extra}


def four_cp(msg_id: str, end_in_s: float) -> dict[str, Any]:
    now = time.time()
    return {"id": msg_id, "type": "4CP", "notified_at": iso_at(now), "start": iso_at(now),
            "end": iso_at(now + end_in_s)}  # fmt: skip


def award(msg_id: str, product: str, mw: float, end_in_s: float = 3600.0) -> dict[str, Any]:
    """An ancillary-service award running from now for `end_in_s` (CONTRACT 2.2 AWARD)."""
    now = time.time()
    return {"id": msg_id, "type": "AWARD", "product": product, "mw": mw,
            "notified_at": iso_at(now), "start": iso_at(now), "end": iso_at(now + end_in_s)}  # fmt: skip


def limit(msg_id: str, mw: float) -> dict[str, Any]:
    return {"id": msg_id, "type": "LIMIT", "mw": mw, "notified_at": iso_at(time.time())}


def recall(recall_id: str) -> dict[str, Any]:
    return {"id": f"{recall_id}-R", "type": "RECALL", "recall_id": recall_id,
            "notified_at": iso_at(time.time())}  # fmt: skip


def override(mode: str, *, ttl_s: int | None = 60, key: bytes | None = None,
             **extra: Any) -> dict[str, Any]:  # fmt: skip
    """An override request with a fresh nonce; signed when `key` is given."""
    doc: dict[str, Any] = {"mode": mode, "operator": "faults", "reason": "fault test",
                           "issued_at": iso_at(time.time()), "nonce": secrets.token_hex(6),
                           **extra}  # fmt: skip
    if ttl_s is not None:
        doc["ttl_s"] = ttl_s
    return sign_override(doc, key) if key is not None else doc


# -- config files ------------------------------------------------------------------------------


def edit_toml(text: str, changes: dict[str, Any]) -> str:
    """`text` with each "section.key" set to its value (a line added when the key is absent).

    Text-level on purpose: a reload test must be able to write a file the config loader refuses.
    """
    lines = text.splitlines()
    for dotted, value in changes.items():
        section, key = dotted.rsplit(".", 1)
        rendered = f"{key} = {json.dumps(value)}"
        current, header_at, done = "", None, False
        for i, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith("[") and not stripped.startswith("[["):
                current = stripped.strip("[]")
                if current == section:
                    header_at = i
            elif current == section and stripped.split("=")[0].strip() == key:
                lines[i] = rendered
                done = True
                break
        if not done:
            assert header_at is not None, f"no [{section}] table in the config"
            lines.insert(header_at + 1, rendered)
    return "\n".join(lines) + "\n"
