"""Xen 4.17's own pygrub, the oracle for output formats and every case it gets right."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

XEN_PYGRUB = Path("/usr/lib/xen-4.17/bin/pygrub")
XEN_PYTHON_LIB = XEN_PYGRUB.parent.parent / "lib" / "python"


def require_xen() -> Path:
    if not XEN_PYGRUB.exists():
        pytest.fail("Xen's pygrub is not installed (apt-get install xen-utils-4.17; .ci/run does)")
    return XEN_PYGRUB


def xen_module() -> ModuleType:
    """Xen's pygrub script as a module (its main block does not run on import)."""
    require_xen()
    if "xen_pygrub" in sys.modules:
        return sys.modules["xen_pygrub"]
    sys.path.insert(1, str(XEN_PYTHON_LIB))
    loader = importlib.machinery.SourceFileLoader("xen_pygrub", str(XEN_PYGRUB))
    spec = importlib.util.spec_from_loader("xen_pygrub", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules["xen_pygrub"] = module
    return module


def run_xen(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(require_xen()), *map(str, args)],
        capture_output=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


TEMP_NAME = re.compile(rb"(boot_(?:kernel|ramdisk)\.)[A-Za-z0-9_]{6,}")


def normalise(output: bytes) -> bytes:
    """Output with the random part of mkstemp names replaced."""
    return TEMP_NAME.sub(rb"\1XXXXXX", output)
