"""How long the command line takes to answer, against `python -c pass`, measured side by side in
one run (each round runs every command once, in turn, so the machine's noise falls on all).

Prints the median seconds of each command and its excess over the interpreter's own start.
Targets (2 cores): `failover --help` <= 0.15 s, `validate runbooks/shop.yaml` <= 0.35 s,
`plan` <= 0.4 s. With `--tree DIR` (another checkout's root), its commands run beside this
tree's, for a before/after in one run.

    python benchmarks/cli_speed.py [--rounds N] [--tree DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "import failover": ["-c", "import failover"],
    "failover --help": ["-m", "failover.cli", "--help"],
    "validate shop": ["-m", "failover.cli", "validate", "runbooks/shop.yaml"],
    "plan shop": ["-m", "failover.cli", "plan", "runbooks/shop.yaml", "--from", "east", "--to", "west"],
}
TARGETS = {"failover --help": 0.15, "validate shop": 0.35, "plan shop": 0.4}


def timed(args: list[str], tree: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "COLUMNS": "120"}
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tree", type=Path, help="Another checkout to measure beside this one.")
    args = parser.parse_args()
    trees = {"now": ROOT, **({"other": args.tree.resolve()} if args.tree else {})}
    seen: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        seen.setdefault(("python -c pass", "-"), []).append(timed(["-c", "pass"], ROOT))
        for label, tree in trees.items():
            for name, command in COMMANDS.items():
                seen.setdefault((name, label), []).append(timed(command, tree))
    base = statistics.median(seen[("python -c pass", "-")])
    print(f"python -c pass: {base:.3f} s (median of {args.rounds})")
    for (name, label), times in seen.items():
        if name == "python -c pass":
            continue
        median = statistics.median(times)
        target = TARGETS.get(name)
        verdict = (
            "" if target is None else f"  target <= {target:g} s: {'met' if median <= target else 'NOT met'}"
        )
        print(f"{name:<18} [{label:>5}] {median:6.3f} s  ({median / base:5.1f}x python -c pass){verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
