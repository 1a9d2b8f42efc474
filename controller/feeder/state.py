"""What the feeder last published, per product, kept in `state_dir` so that a restart neither
repeats nor skips a record (CONTRACT 2.6).

Written after every publish that the broker acknowledged, atomically (a temporary file,
fsync, rename), so a kill -9 leaves either the old state or the new one. `recent` keeps the
prices of the last records published, to tell a correction (same time, new price) from a
record already sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.atomic_file import write_json_atomic
from controller.config_model import ErcotProduct

FILE_NAME = "feed-ercot.json"
RECENT_KEPT_S = 6 * 3600.0  # corrections are looked for over the last hour; this is ample


@dataclass
class ProductState:
    last_at_s: float  # time of the newest record published
    last_row: dict[str, Any]  # that record, to keep it the retained one
    recent: dict[float, float] = field(default_factory=dict)  # record time -> price published


class FeedState:
    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self.products: dict[str, ProductState] = {}

    def load(self) -> list[str]:
        """Read the file if there is one; a problem for each part that could not be used (the
        feeder then starts that product afresh, which repeats at most an hour of records)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            return [f"{self.path}: unreadable ({exc}); starting afresh"]
        problems = []
        for product, entry in (data.get("products") or {}).items():
            try:
                self.products[product] = ProductState(
                    float(entry["last_at_s"]),
                    dict(entry["last_row"]),
                    {float(t): float(p) for t, p in entry.get("recent", [])},
                )
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(f"{self.path}: {product}: {exc!r}; starting it afresh")
        return problems

    def mark(self, product: ErcotProduct, at_s: float, price: float, row: dict[str, Any]) -> None:
        """Note one published record (not saved until `save`)."""
        current = self.products.get(product)
        if current is None or at_s >= current.last_at_s:
            recent = current.recent if current is not None else {}
            current = self.products[product] = ProductState(at_s, row, recent)
        current.recent[at_s] = price
        horizon = current.last_at_s - RECENT_KEPT_S
        current.recent = {t: p for t, p in current.recent.items() if t >= horizon}

    def save(self) -> None:
        data = {"products": {
            product: {"last_at_s": s.last_at_s, "last_row": s.last_row,
                      "recent": sorted([t, p] for t, p in s.recent.items())}
            for product, s in self.products.items()}}  # fmt: skip
        write_json_atomic(self.path, data)
