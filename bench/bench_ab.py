"""decide() before and after a change, alternated in one session: the fair comparison on a
noisy 2-core machine, where one process's figures drift by up to 1.6x from the next one's.

Checks out REV (default: the merge base with main) in a temporary git worktree, then runs
the same cases of bench_decide in fresh processes, before and after in turn, `--rounds` times;
each case's figure is the median of its per-process medians. Prints the table and writes the
"decide() before/after" section of bench/RESULTS.md.

    .venv/bin/python bench/bench_ab.py --before 58b956b [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results import write_section  # noqa: E402

CASES = [(10, "steady", 2000), (10, "price-step", 2000), (100, "steady", 1000),
         (100, "price-step", 1000), (1000, "steady", 300), (1000, "price-step", 300)]  # fmt: skip
# Run inside the tree under test: its own bench_decide and its own controller package.
PROBE = (
    "from bench.bench_decide import run_case\n"
    f"for n, regime, it in {CASES!r}:\n"
    "    print(run_case(n, regime, it, warmup=50).median_us)\n"
)


def medians(tree: Path) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tree, env=env, check=True, capture_output=True, text=True
    )
    return [float(line) for line in out.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--before", required=True, help="the git revision to compare against")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args()
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.before], cwd=ROOT, check=True,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="curtaild-ab-") as tmp:
        before_tree = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(before_tree), rev],
            cwd=ROOT,
            check=True,
        )
        try:
            runs: dict[str, list[list[float]]] = {"before": [], "after": []}
            for k in range(args.rounds):
                runs["before"].append(medians(before_tree))
                runs["after"].append(medians(ROOT))
                print(f"round {k + 1}/{args.rounds}: before {runs['before'][-1]}")
                print(f"               after  {runs['after'][-1]}")
        finally:
            remove = ["git", "worktree", "remove", "--force", str(before_tree)]
            subprocess.run(remove, cwd=ROOT, check=False)
    lines = [
        f"| pools | regime | before ({rev}) median µs | after median µs | after / before |",
        "|------:|:-------|------:|------:|------:|",
    ]
    for i, (n, regime, _) in enumerate(CASES):
        before = statistics.median(r[i] for r in runs["before"])
        after = statistics.median(r[i] for r in runs["after"])
        lines.append(f"| {n} | {regime} | {before:.1f} | {after:.1f} | {after / before:.2f} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        body = (
            f"{args.rounds} rounds, before and after alternated, each a fresh process; the "
            "figure is the median of the per-process medians (see bench_decide for the "
            f"regimes).\n\n{table}"
        )
        write_section(
            "decide() before/after", body, f".venv/bin/python bench/bench_ab.py --before {rev}"
        )


if __name__ == "__main__":
    main()
