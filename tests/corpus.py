"""The shared corpus of real bootloader configs (../shared/corpus), for tests of every format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def corpus_cases(*formats: str) -> list[pytest.param]:
    """One pytest param per case folder (optionally of these formats), id = folder name.

    With CI=true a missing corpus fails the run instead of quietly testing nothing.
    """
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            return [pytest.param(None, id="corpus-missing")]
        return [
            pytest.param(
                None, id="corpus-missing", marks=pytest.mark.skip(reason=f"no corpus at {CORPUS}")
            )
        ]
    cases = []
    for expected in sorted(CORPUS.glob("*/expected.json")):
        data = json.loads(expected.read_text())
        if formats and data["format"] not in formats:
            continue
        cases.append(pytest.param(expected.parent, id=expected.parent.name))
    return cases


def load_expected(case: Path | None) -> dict:
    if case is None:
        pytest.fail(f"the corpus is missing at {CORPUS}")
    return json.loads((case / "expected.json").read_text())
