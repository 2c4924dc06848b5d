#!/usr/bin/env python3
"""``make fuzz-long``: every hostile guest (or the named ones) fuzzed in turn with atheris,
each for a fixed time, its corpus grown in fuzz/corpus/TARGET and then merged minimal
(libFuzzer's -merge=1), crashes saved to a directory, and one line per target appended
to a log: date, target, seconds, executions, corpus files, new units (coverage), crash.

    python fuzz/long.py --minutes 5 [--targets ext4,fat16] [--save fuzz-failures]

Run it niced on a shared machine; tests/test_fuzz_corpus.py replays what it keeps.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import hostile  # noqa: E402

FUZZER = HERE / "atheris_parsers.py"
CORPUS = HERE / "corpus"
LOG = HERE / "long.log"
#: libFuzzer's own flags for every run: a slow input is a finding, as is a memory hog.
HEADER = "# date\ttarget\tseconds\texecutions\tcorpus files\tnew units\tcrash\n"
FLAGS = ["-timeout=30", "-rss_limit_mb=2048", "-print_final_stats=1", "-max_len=256"]


@dataclass
class Stats:
    """What libFuzzer's -print_final_stats=1 reports at the end of a run."""

    executions: int = 0
    new_units: int = 0
    seconds: int = 0


def final_stats(output: str) -> Stats:
    """The ``stat::name: value`` lines libFuzzer prints last, and its "Done N runs in S second(s)"."""
    stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", output, re.M))
    done = re.search(r"^Done (\d+) runs in (\d+) second", output, re.M)
    return Stats(
        executions=int(stats.get("number_of_executed_units", done[1] if done else 0)),
        new_units=int(stats.get("new_units_added", 0)),
        seconds=int(done[2]) if done else 0,
    )


def crash_of(output: str) -> str:
    """The artifact libFuzzer wrote for a crash, timeout or memory hog, if any."""
    found = re.search(r"Test unit written to (\S+)", output)
    return found[1] if found else "-"


def fuzz(target: str, seconds: int, save: Path, env: dict[str, str]) -> tuple[Stats, str, float]:
    """One target fuzzed for ``seconds``, its corpus grown in place."""
    corpus = CORPUS / target
    corpus.mkdir(parents=True, exist_ok=True)
    if not any(corpus.iterdir()):
        # One edit (a bit flipped at the first region's start): libFuzzer grows its length
        # limit from the corpus's longest input, and a slow target (btrfs: 2 runs a second)
        # would spend its run on inputs shorter than an edit, which change nothing.
        (corpus / "seed").write_bytes(bytes(8))
    save.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(FUZZER), target, f"-max_total_time={seconds}", *FLAGS]
    cmd += [f"-artifact_prefix={save}/{target}-", str(corpus)]
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)
    wall = time.monotonic() - start
    (save / f"{target}.log").write_text(done.stderr)
    return final_stats(done.stderr), crash_of(done.stderr), wall


def merge(target: str, env: dict[str, str]) -> int:
    """The target's corpus cut to the inputs that keep its coverage; how many are left."""
    corpus = CORPUS / target
    with tempfile.TemporaryDirectory(prefix=f"merge-{target}-") as new:
        cmd = [sys.executable, str(FUZZER), target, "-merge=1", *FLAGS, new, str(corpus)]
        subprocess.run(cmd, capture_output=True, env=env)
        kept = list(Path(new).iterdir())
        if kept:  # a failed merge keeps what there was
            shutil.rmtree(corpus)
            corpus.mkdir()
            for path in kept:
                shutil.copy(path, corpus / path.name)
    return len(list(corpus.iterdir()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5, help="per target")
    parser.add_argument("--targets", default="", help="comma-separated; every guest if empty")
    parser.add_argument("--save", type=Path, default=Path("fuzz-failures"), help="crashes")
    parser.add_argument("--log", type=Path, default=LOG)
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t] or list(hostile.BUILDERS)
    unknown = set(targets) - set(hostile.BUILDERS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    save = args.save.resolve()
    for target in targets:
        with tempfile.TemporaryDirectory(prefix="fuzz-long-") as tmp:
            env = {**os.environ, "TMPDIR": tmp, "FUZZ_TARGET_CACHE": tmp}
            stats, crash, wall = fuzz(target, round(args.minutes * 60), save, env)
            files = merge(target, env)
        line = (f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\t{target}\t"
                f"{stats.seconds}\t{stats.executions}\t{files}\t{stats.new_units}\t{crash}")  # fmt: skip
        print(line, flush=True)
        with args.log.open("a") as log:
            if not log.tell():
                log.write(HEADER)
            log.write(line + "\n")


if __name__ == "__main__":
    main()
