#!/usr/bin/env python3
"""Coverage-guided fuzzing of one format's parsers with atheris (libFuzzer for Python).

    pip install '.[fuzz]'
    python fuzz/atheris_parsers.py ext4 -max_total_time=300 -artifact_prefix=crashes/ corpus/

TARGET is a guest of tests/hostile.py (ext4, fat16, btrfs-zstd, f2fs, qcow2-zlib, lvm, ...).
The input is an edit script applied to that guest's base image (fuzz/edit_script.py);
any exception other than pygrub's own errors is a crash. Crash inputs replay with
``python fuzz/atheris_parsers.py TARGET FILE``; ``make fuzz-long`` runs every target in
turn and keeps fuzz/corpus/TARGET, which tests/test_fuzz_corpus.py replays in CI.
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Every reader and loader now, inside the context, so that coverage guides into them all.
with atheris.instrument_imports():
    import edit_script
    import hostile

    hostile.warm_imports()


def cached_target(name: str) -> edit_script.Target:
    """The target, built once per $FUZZ_TARGET_CACHE (fuzz/long.py's fuzzing and merge
    runs share it: building a guest takes longer than a short run fuzzes)."""
    cache = os.environ.get("FUZZ_TARGET_CACHE")
    saved = Path(cache, f"{name}.pickle") if cache else None
    if saved and saved.exists():
        return pickle.loads(saved.read_bytes())
    target = edit_script.build_target(name, Path(tempfile.mkdtemp(prefix="atheris-")))
    if saved:
        saved.write_bytes(pickle.dumps(target))
    return target


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in hostile.BUILDERS:
        sys.exit(f"usage: {sys.argv[0]} TARGET [libFuzzer flags] [corpus]\n"
                 f"targets: {', '.join(hostile.BUILDERS)}")  # fmt: skip
    name = sys.argv.pop(1)
    target = cached_target(name)
    atheris.Setup(sys.argv, target.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
