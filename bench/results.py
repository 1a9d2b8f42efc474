"""bench/RESULTS.md is made of sections, one per benchmark; each script rewrites its own."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEach section is rewritten by the script it names.\n"


def machine() -> str:
    cpu = "unknown CPU"
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def write_section(title: str, body: str, command: str) -> None:
    """Replace (or append) the `## title` section of RESULTS.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {title}\n\n`{command}` on {stamp}; {machine()}.\n\n{body.rstrip()}\n\n"
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = (
        pattern.sub(lambda _m: section, text)
        if pattern.search(text)
        else (text.rstrip() + "\n\n" + section)
    )
    RESULTS.write_text(text.rstrip() + "\n")
