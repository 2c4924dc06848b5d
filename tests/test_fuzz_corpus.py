"""The corpus coverage-guided fuzzing grew (``make fuzz-long``, fuzz/corpus/TARGET), every
input replayed through the very function the fuzzer calls, without atheris: each must end
in success or pygrub's own error, within a CPU bound. An input that once crashed a reader
stays here as its regression test once fixed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hostile
import pytest
from bounded import cpu_bounded

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))

import edit_script  # noqa: E402

#: CPU seconds one input may take: the pristine guests boot in well under a second.
INPUT_CPU_LIMIT = 5.0
TARGETS = sorted(p.name for p in edit_script.CORPUS.iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    hostile.warm_imports()
    return lambda name: edit_script.build_target(name, tmp_path_factory.mktemp(name))


def test_corpus_is_committed_for_known_targets():
    assert TARGETS, "no corpus under fuzz/corpus: run make fuzz-long"
    assert set(TARGETS) <= set(hostile.BUILDERS)
    for name in TARGETS:
        assert any((edit_script.CORPUS / name).iterdir()), f"fuzz/corpus/{name} is empty"


@pytest.mark.parametrize("name", TARGETS)
def test_corpus_replays(build, name):
    target = build(name)
    failures = []
    for path in sorted((edit_script.CORPUS / name).iterdir()):
        try:
            with cpu_bounded(INPUT_CPU_LIMIT):
                target.run(path.read_bytes())
        except Exception as e:  # noqa: BLE001 - each input's failure is reported by name
            failures.append(f"{path.name}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_replay_fails_on_a_crash(monkeypatch):
    """Only pygrub's own errors count as a refusal: anything else reaches the test."""
    target = edit_script.Target("ext4", b"\0" * 4096, [(0, 4096)])
    target.run(b"\0" * 8)  # an unusable disk: pygrub's own error, swallowed

    def crash(image: bytes) -> None:
        raise IndexError("a reader's bug")

    monkeypatch.setattr(edit_script, "boot_and_read", crash)
    with pytest.raises(IndexError):
        target.run(b"\0" * 8)
