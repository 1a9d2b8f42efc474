"""What the agent learned of each miner, kept in `state_dir` across restarts (one JSON per pool).

Written atomically (temporary file, fsync, rename): a crash leaves the old file or the new one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controller.atomic_file import write_json_atomic

logger = logging.getLogger("curtaild.agent")


@dataclass
class MinerKnowledge:
    model: str = ""
    firmware: str = ""
    nominal_w: float | None = None  # rated, from presets, or seen drawing with no limit
    j_per_th: float | None = None
    limits_w: list[float] = field(default_factory=list)  # [] takes no power limit
    seen_mining: bool = False
    last_power_w: float | None = None


@dataclass
class PoolMemory:
    applied_seq: int = 0
    miners: dict[str, MinerKnowledge] = field(default_factory=dict)
    epoch: int = 0  # the highest leadership epoch obeyed (0: none seen, docs/ha.md)


class PoolStore:
    def __init__(self, state_dir: str | Path, pool: str) -> None:
        self.path = Path(state_dir) / f"pool-{pool}.json"

    def load(self) -> PoolMemory:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            miners = {ip: MinerKnowledge(**known) for ip, known in doc["miners"].items()}
            return PoolMemory(int(doc["applied_seq"]), miners, int(doc.get("epoch", 0)))
        except FileNotFoundError:
            return PoolMemory()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("agent state %s unreadable (%r): starting afresh", self.path, exc)
            return PoolMemory()

    def save(self, memory: PoolMemory) -> None:
        doc: dict[str, Any] = {
            "applied_seq": memory.applied_seq,
            "epoch": memory.epoch,
            "miners": {ip: asdict(known) for ip, known in memory.miners.items()},
        }
        try:
            write_json_atomic(self.path, doc)
        except OSError as exc:  # a full disk must not stop the agent: it runs on, unsaved
            logger.warning("agent state %s not saved: %r", self.path, exc)
