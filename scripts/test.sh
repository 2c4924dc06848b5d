#!/usr/bin/env bash
# The README's test command: a fresh venv with pygrub and its test tools, then ruff and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${PYGRUB_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]'
"$venv/bin/ruff" check src tests bench
"$venv/bin/ruff" format --check src tests bench
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
