#!/usr/bin/env python3
"""Cut the ```sh blocks out of a guide, one file per block, named after their section.

The host check runs the guide's own commands, not a copy of them: run.sh calls this on
docs/deploy.md and deploy/README.md, and the guest runs the resulting files by name. A block is
named `<prefix>-<section number>-<n>` (its `##`/`###` heading's number, then its place in that
section, from 1), e.g. `deploy-8-1` is the first block of "## 8. First start". When the guide is
reorganised a name the guest asks for no longer exists and the check stops there, instead of
silently running something else. Stdlib only: it runs on the host before any venv exists.

Usage: blocks.py GUIDE.md PREFIX OUTDIR   (prints the names it wrote)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADING = re.compile(r"^#{2,3}\s+(\d+(?:\.\d+)?)\.?\s")
FENCE_OPEN = re.compile(r"^(\s*)```sh\s*$")


def blocks(text: str) -> list[tuple[str, str]]:
    """(section number, body) for every ```sh block, in order; indentation of list items removed."""
    found: list[tuple[str, str]] = []
    section = "0"
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        heading = HEADING.match(lines[i])
        if heading:
            section = heading.group(1)
        opened = FENCE_OPEN.match(lines[i])
        if opened:
            indent = len(opened.group(1))
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
                i += 1
            found.append((section, "\n".join(body) + "\n"))
        i += 1
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        sys.stderr.write(__doc__ or "")
        return 2
    guide, prefix, outdir = Path(argv[1]), argv[2], Path(argv[3])
    outdir.mkdir(parents=True, exist_ok=True)
    count: dict[str, int] = {}
    for section, body in blocks(guide.read_text()):
        count[section] = count.get(section, 0) + 1
        name = f"{prefix}-{section}-{count[section]}"
        (outdir / f"{name}.sh").write_text(f"# {guide.name}, section {section}\n{body}")
        sys.stdout.write(name + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
