#!/usr/bin/env bash
# CI as a new machine's first run sees it: a fresh clone of this repository's HEAD, a
# fresh venv, and every cache the tests fill (guest images, dom0s, test kernels, pip)
# empty, under DIR (default /tmp/pygrub-new-machine). The host's apt packages stay: a
# bare Debian adds their installation. Prints the exit status and seconds at the end
# of DIR/log. Needs ../shared beside the repository, as CI has it.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/pygrub-new-machine}
rm -rf "$dir"
mkdir -p "$dir/cache/guests" "$dir/cache/dom0" "$dir/cache/tests"
cp -r "$here/../shared" "$dir/shared"
git clone -q "$here" "$dir/main"
cd "$dir/main"
export PYGRUB_GUEST_CACHE=$dir/cache/guests PYGRUB_DOM0_CACHE=$dir/cache/dom0
export PYGRUB_TEST_CACHE=$dir/cache/tests PIP_NO_CACHE_DIR=1
start=$(date +%s)
CI=true bash .ci/run >"$dir/log" 2>&1
echo "rc=$? seconds=$(($(date +%s) - start))" >>"$dir/log"
tail -n 3 "$dir/log"
