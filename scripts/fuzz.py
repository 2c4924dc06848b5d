#!/usr/bin/env python3
"""The full hostile-image suite (``make fuzz``): thousands of mutants of a bootable guest
per format through the whole command, plus the hostile-config cases; figures at the end.

    python scripts/fuzz.py --seed 1 --count 1000 [--guests ext4,fat16] [--minutes 15]

Every run must end within bounds with exit 0 or 1, print no traceback or internal error,
leave nothing in its output directory and an empty output file on failure, and leave the
image unchanged (tests/hostile.py has the checks). Most runs are forked children calling
pygrub.cli.main; every --exec-every'th is a real ``python -m pygrub`` and every
--runas-every'th also runs with --runas (root only). Failing mutants are kept in --save
as <guest>-<seed>.json (the edits) and .img.xz (the image, its file data zeroed when the
failure survives that), ready to become tests/fuzz_cases/ regressions.
"""

from __future__ import annotations

import argparse
import collections
import json
import lzma
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import hostile  # noqa: E402
from hostile import Guest, Mutant, Mutator, Run  # noqa: E402


class Figures:
    """What the runs did, for the report at the end."""

    def __init__(self) -> None:
        self.runs = 0
        self.by_mode: collections.Counter[str] = collections.Counter()
        self.by_status: collections.Counter[str] = collections.Counter()
        self.by_guest: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.problems: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.slowest: tuple[float, str] = (0.0, "")
        self.peak_fork_kb: tuple[int, str] = (0, "")
        self.peak_exec_kb: tuple[int, str] = (0, "")
        self.started = time.monotonic()

    def add(self, run: Run) -> None:
        self.runs += 1
        mode = "exec" if not run.in_process else "fork"
        mode += "+runas" if any(a.startswith("--runas") for a in run.extra_args) else ""
        self.by_mode[mode] += 1
        status = (
            "hang"
            if run.timed_out
            else f"signal {run.signal}"
            if run.signal is not None
            else f"exit {run.status}"
        )
        self.by_status[status] += 1
        guest = run.label.split(" ", 1)[0]
        self.by_guest[guest][status] += 1
        self.slowest = max(self.slowest, (run.elapsed, run.label))
        if run.in_process:
            self.peak_fork_kb = max(self.peak_fork_kb, (run.maxrss_kb, run.label))
        else:
            self.peak_exec_kb = max(self.peak_exec_kb, (run.maxrss_kb, run.label))
        if run.problems:
            self.by_guest[guest]["FAILED"] += 1
            for p in run.problems:
                self.problems[p.split(":", 1)[0]] += 1
            self.failures.append(f"{run.label}: {'; '.join(run.problems)}")

    def report(self) -> str:
        lines = [
            f"runs: {self.runs} in {time.monotonic() - self.started:.0f} s "
            f"({', '.join(f'{m} {n}' for m, n in sorted(self.by_mode.items()))})",
            "outcomes: " + ", ".join(f"{s}: {n}" for s, n in sorted(self.by_status.items())),
            f"slowest run: {self.slowest[0]:.2f} s ({self.slowest[1]})",
            f"peak RSS of a real command: {self.peak_exec_kb[0] / 1024:.1f} MiB ({self.peak_exec_kb[1]})",
            f"peak RSS growth of a forked run: {self.peak_fork_kb[0] / 1024:.1f} MiB ({self.peak_fork_kb[1]})",
            f"runs breaking a rule: {len(self.failures)}"
            + (f" ({', '.join(f'{k}: {n}' for k, n in self.problems.most_common())})" if self.failures else ""),
            "by guest:",
        ]  # fmt: skip
        for guest, counts in sorted(self.by_guest.items()):
            lines.append(
                f"  {guest:16s} " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
            )
        return "\n".join(lines)


def mutant_runs(
    guests: dict[str, Guest],
    mutators: dict[str, Mutator],
    work: Path,
    seeds: range,
    args: argparse.Namespace,
    deadline: float,
    pending: dict[str, Mutant],
) -> Iterator[Run]:
    """Round-robin over the guests, so that a time limit still covers every format."""
    counter = 0
    for seed in seeds:
        for name, guest in guests.items():
            if time.monotonic() > deadline:
                return
            counter += 1
            mutant = mutators[name].mutant(seed)
            workdir = work / f"{name}-{seed}"
            workdir.mkdir(parents=True)
            image = workdir / "image"
            hostile.write_mutant(guest, mutant, image)
            run = Run(f"{name} #{seed}", image, workdir, env=dict(guest.env))
            run.in_process = not (args.exec_every and counter % args.exec_every == 0)
            if args.runas_every and counter % args.runas_every == 0:
                run.in_process = False
                run.extra_args = ["--runas=65534"]
            pending[run.label] = mutant
            yield hostile.prepare(run)


def shrink(guest: Guest, mutant: Mutant, image: Path, problem: str, work: Path) -> bool:
    """Zero the image's file data (outside the metadata regions and edits) if the same
    problem survives, so that the kept image compresses to little. True if it did."""
    trial = work / "shrink"
    shutil.rmtree(trial, ignore_errors=True)
    trial.mkdir(parents=True)
    candidate = trial / "image"
    shutil.copyfile(image, candidate)
    keep = sorted([*guest.regions, *((o, o + len(d)) for o, d in mutant.edits)])
    size = candidate.stat().st_size
    with open(candidate, "r+b") as f:
        at = 0
        for start, end in [*keep, (size, size)]:
            if start > at:
                f.seek(at)
                f.write(bytes(min(start, size) - at))
            at = max(at, end)
    run = hostile.prepare(Run("shrink", candidate, trial))
    (again,) = hostile.execute([run])
    kind = problem.split(":", 1)[0]
    if any(p.split(":", 1)[0] == kind for p in again.problems):
        shutil.copyfile(candidate, image)
        return True
    return False


def save_failure(run: Run, guest: Guest, mutant: Mutant, save: Path, work: Path) -> None:
    save.mkdir(parents=True, exist_ok=True)
    stem = f"{mutant.guest}-{mutant.seed}"
    shrunk = (
        shrink(guest, mutant, run.image, run.problems[0], work) if run.image.exists() else False
    )
    with open(run.image, "rb") as fin, lzma.open(save / f"{stem}.img.xz", "wb") as fout:
        shutil.copyfileobj(fin, fout)
    record = {
        "mutant": mutant.to_json(),
        "describe": mutant.describe(),
        "problems": run.problems,
        "stderr": run.stderr.decode("utf-8", "replace")[-2000:],
        "extra_args": run.extra_args,
        "file_data_zeroed": shrunk,
    }
    (save / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")


def run_configs(work: Path, jobs: int, figures: Figures) -> None:
    cases = hostile.config_cases()
    runs, by_label = [], {}
    build = work / "configs"
    build.mkdir()
    for case in cases:
        image = hostile.build_case(build, case)
        run = Run(f"config:{case.name}", image, build / f"{case.name}.run")
        run.contents, run.in_process = hostile.case_contents(case), False
        runs.append(hostile.prepare(run))
        by_label[run.label] = case
    for run in hostile.execute(runs, jobs=jobs):
        run.problems[:] = hostile.case_problems(by_label[run.label], run)
        figures.add(run)
        if run.problems:
            print(f"FAIL {run.label}: {run.problems}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="first mutant seed is SEED*1e6")
    parser.add_argument("--count", type=int, default=1000, help="mutants per guest")
    parser.add_argument("--guests", default="", help="comma-separated (default: all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--minutes", type=float, default=0, help="stop starting runs after this")
    parser.add_argument("--exec-every", type=int, default=25, help="every Nth run a real exec")
    parser.add_argument("--runas-every", type=int, default=0, help="every Nth run with --runas")
    parser.add_argument("--no-configs", action="store_true", help="skip the hostile configs")
    parser.add_argument("--save", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--work", type=Path, default=None, help="scratch (default /dev/shm)")
    args = parser.parse_args()

    names = [n for n in args.guests.split(",") if n] or list(hostile.BUILDERS)
    unknown = set(names) - set(hostile.BUILDERS)
    if unknown:
        parser.error(f"unknown guests {sorted(unknown)}; known: {', '.join(hostile.BUILDERS)}")
    scratch = args.work or (Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else None)
    work = Path(tempfile.mkdtemp(prefix="pygrub-fuzz-", dir=scratch))
    figures = Figures()
    try:
        print(f"building {len(names)} guests in {work}", flush=True)
        guests = hostile.build_guests(work / "guests", names)
        pristine = [
            hostile.prepare(Run(f"{n} pristine", g.image, work / f"{n}-pristine", in_process=False))
            for n, g in guests.items()
        ]
        for run in hostile.execute(pristine, jobs=args.jobs):
            figures.add(run)
            if run.status != 0 or run.problems:
                print(f"FAIL {run.label} does not boot: {run.problems} {run.stderr[-300:]!r}")
        if not args.no_configs:
            run_configs(work, args.jobs, figures)
        hostile.warm_imports()
        mutators = {n: Mutator(g) for n, g in guests.items()}
        deadline = time.monotonic() + args.minutes * 60 if args.minutes else float("inf")
        seeds = range(args.seed * 1_000_000, args.seed * 1_000_000 + args.count)
        pending: dict[str, Mutant] = {}
        runs = mutant_runs(guests, mutators, work / "mutants", seeds, args, deadline, pending)
        for run in hostile.execute(runs, jobs=args.jobs):
            mutant = pending.pop(run.label)
            figures.add(run)
            if run.problems:
                print(f"FAIL {mutant.describe()}: {run.problems}", flush=True)
                save_failure(run, guests[mutant.guest], mutant, args.save, work)
            elif figures.runs % 500 == 0:
                print(f"... {figures.runs} runs, {len(figures.failures)} failing", flush=True)
            shutil.rmtree(run.workdir, ignore_errors=True)
        for m in mutators.values():
            m.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(figures.report())
    return 1 if figures.failures else 0


if __name__ == "__main__":
    sys.exit(main())
