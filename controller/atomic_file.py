"""One durable way to replace a small JSON file: what the feeder and the agent keep in state_dir.

Written to a temporary file beside it, fsynced, renamed over it, and the directory fsynced so
the rename itself survives a power cut: a reader sees the old file or the new one, never half.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, doc: Any) -> None:
    """Raise OSError when it could not be written (the caller decides whether that is fatal)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(doc, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
