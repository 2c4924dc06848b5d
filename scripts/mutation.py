#!/usr/bin/env python3
"""Mutation testing (``make mutation``): mutmut over the modules [tool.mutmut] names in
pyproject.toml, one module at a time so that each finished module's figures stand even
when the run is stopped, then mutants, killed, survived, timeouts per module.

    python scripts/mutation.py [--jobs 2] [--only gpt,ext4] [--summary]

mutmut keeps its results in mutants/ (a module named here is tested afresh each time:
mutmut re-runs every mutant it is given by name); ``--summary`` prints the table from
them without running anything, and ``.venv/bin/mutmut run NAME...`` re-tests a few.
The survivors and why each is harmless are in tests/mutation-survivors.md. Needs
Python 3.11+ (tomllib).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
#: mutmut's exit codes, as mutmut.stats names them.
STATUS = {0: "survived", 1: "killed", 3: "killed", 33: "no tests", 5: "no tests", 36: "timeout"}
STATUS.update({-24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", 37: "killed"})
COLUMNS = ("mutants", "killed", "survived", "timeout", "no tests", "other", "not run")


def modules() -> list[str]:
    """Each module's dotted name, from [tool.mutmut] only_mutate (globs expanded)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    found: list[str] = []
    for pattern in config["only_mutate"]:
        for path in sorted(ROOT.glob(pattern)):
            if path.suffix == ".py":
                found.append(".".join(path.relative_to(ROOT / "src").with_suffix("").parts))
    return found


def counts(module: str) -> collections.Counter[str]:
    """How mutmut's recorded results for one module stand."""
    meta = ROOT / "mutants" / "src" / (module.replace(".", "/") + ".py.meta")
    tally: collections.Counter[str] = collections.Counter()
    if not meta.exists():
        return tally
    for code in json.loads(meta.read_text())["exit_code_by_key"].values():
        tally["mutants"] += 1
        status = "not run" if code is None else STATUS.get(code, "other")
        tally[status] += 1
    return tally


def summary(names: list[str]) -> str:
    lines = [f"{'module':32} " + " ".join(f"{c:>8}" for c in COLUMNS) + "   killed%"]
    total: collections.Counter[str] = collections.Counter()
    for name in names:
        tally = counts(name)
        total.update(tally)
        lines.append(_row(name, tally))
    lines.append(_row("total", total))
    return "\n".join(lines)


def _row(name: str, tally: collections.Counter[str]) -> str:
    run = tally["mutants"] - tally["not run"]
    score = f"{100 * tally['killed'] / run:8.1f}" if run else "       -"
    return f"{name:32} " + " ".join(f"{tally[c]:>8}" for c in COLUMNS) + f"  {score}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only", help="comma-separated module name endings (gpt,ext4,...)")
    parser.add_argument("--summary", action="store_true", help="print the table, run nothing")
    args = parser.parse_args()
    names = modules()
    if args.only:
        # In the order given: the modules that matter most first when time is short.
        names = [n for w in args.only.split(",") for n in names if n.endswith(w)]
    mutmut = Path(sys.executable).with_name("mutmut")
    if not args.summary:
        (ROOT / "mutants").mkdir(exist_ok=True)
        for name in names:
            began = time.monotonic()
            # Mutant names are module.x_function__mutmut_N (a package's: package.x_...).
            pattern = name.removesuffix(".__init__") + ".x*"
            command = [str(mutmut), "run", "--max-children", str(args.jobs), pattern]
            with open(ROOT / "mutants" / f"run-{name}.log", "wb") as log:
                result = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            seconds = time.monotonic() - began
            print(f"{name}: mutmut exit {result.returncode} in {seconds:.0f} s", flush=True)
    print(summary(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
