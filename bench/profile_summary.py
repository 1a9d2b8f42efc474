"""Summarise a py-spy `--format raw` profile (collapsed stacks) as text: where the daemon's
threads spend their samples, inclusive and self, by function (line numbers folded).

    .venv/bin/python bench/profile_summary.py bench/profiles/daemon-1000-200.raw.txt [--top 40]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)")


def summarise(path: Path, top: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        threads[frames[0]] += n
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    out = [f"{path.name}: {total} samples", "", "by thread root:"]
    out += [f"{n:7d} {100 * n / total:5.1f}%  {f}" for f, n in threads.most_common(5)]
    out += ["", f"inclusive, top {top}:"]
    out += [f"{n:7d} {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    out += ["", f"self, top {top}:"]
    out += [f"{n:7d} {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
