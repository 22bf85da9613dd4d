"""Wall time of `deblurstudio-cli` commands that compute nothing: what a user (or a script calling
the CLI once per photo) waits before any pixel is touched.

Each command runs in a fresh subprocess (`python -m deblurstudio.cli.main ...`, as the
`deblurstudio-cli` script does), --runs times; the table shows the median and the spread. With
--compare DIR, the same commands also run from another source tree (e.g. a `git worktree` of an
older commit), alternating run by run so that both see the same machine load, and a ratio column
is added.

Usage (from the repository root):
    python benchmarks/startup.py [--runs 9] [--compare DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "--help": ["--help"],
    "models": ["models"],
    "models --json": ["models", "--json"],
    "deblur --help": ["deblur", "--help"],
}
# The interpreter alone: the floor no change to the package can go below.
BASELINE = "python -c pass"


def time_one_run(argv: list[str], tree: Path) -> float:
    """Seconds from starting `argv` in a subprocess, run from source tree `tree`, to its exit."""
    # cwd first on sys.path: `python -m` imports the package of `tree`, not the installed one.
    started = time.perf_counter()
    subprocess.run(argv, cwd=tree, check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    return time.perf_counter() - started


def measure(trees: list[Path], runs: int) -> dict[str, list[list[float]]]:
    """{command: [times in tree 0, times in tree 1, ...]}, runs alternating between trees."""
    cli = [sys.executable, "-m", "deblurstudio.cli.main"]
    argvs = {BASELINE: [sys.executable, "-c", "pass"]}
    argvs.update({name: cli + args for name, args in COMMANDS.items()})
    times: dict[str, list[list[float]]] = {name: [[] for _ in trees] for name in argvs}
    for name, argv in argvs.items():
        for tree in trees:  # one unmeasured start each: fills the page cache
            time_one_run(argv, tree)
        for _ in range(runs):
            for i, tree in enumerate(trees):
                times[name][i].append(time_one_run(argv, tree))
    return times


def format_table(times: dict[str, list[list[float]]], labels: list[str]) -> str:
    """Median (min–max) seconds per command and tree; with two trees, their ratio."""
    header = ["command", *labels] + ([f"{labels[1]} / {labels[0]}"] if len(labels) == 2 else [])
    rows = [header]
    for name, per_tree in times.items():
        row = [name] + [
            f"{statistics.median(t):.3f} s ({min(t):.2f}–{max(t):.2f})" for t in per_tree
        ]
        if len(per_tree) == 2:
            row.append(f"{statistics.median(per_tree[1]) / statistics.median(per_tree[0]):.2f}")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="runs per command (default 9)")
    parser.add_argument("--compare", type=Path, metavar="DIR",
                        help="another source tree to time the same commands from")
    args = parser.parse_args()
    trees = [ROOT] + ([args.compare.resolve()] if args.compare else [])
    labels = ["this tree"] + ([str(args.compare)] if args.compare else [])
    times = measure(trees, args.runs)
    load = os.getloadavg()[0]
    print(f"median wall time of {args.runs} runs (min–max); "
          f"load average {load:.1f} on {os.cpu_count()} cores")
    print(format_table(times, labels))


if __name__ == "__main__":
    main()
