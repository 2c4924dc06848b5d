"""The README's first command boots the sample guest committed in the repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "guest.img"


def test_readme_names_the_sample_command():
    readme = (ROOT / "README.md").read_text()
    assert 'pygrub -q --output-directory="$(mktemp -d)" samples/guest.img' in readme


def test_sample_guest_boots(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pygrub",
            "-q",
            "--output-format=simple",
            f"--output-directory={tmp_path}",
            str(SAMPLE),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    items = dict(line.split(" ", 1) for line in proc.stdout.decode().splitlines() if line)
    assert (
        Path(items["kernel"]).read_bytes()
        == b"pygrub sample: a stand-in for vmlinuz-6.1.0-28-amd64\n"
    )
    assert (
        Path(items["ramdisk"]).read_bytes()
        == b"pygrub sample: a stand-in for initrd.img-6.1.0-28-amd64\n"
    )
    assert items["args"] == "root=UUID=5f3c9b4e-2f0d-4c39-9a55-0d7f5d1e2a11 ro console=hvc0 quiet"
