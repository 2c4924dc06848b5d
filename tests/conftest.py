import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def needs_root():
    """--runas runs (and XAPI's command line, which has one) need root; CI is root."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the --runas tests need root, and CI runs them as root")
        pytest.skip("the --runas tests need root")


@pytest.fixture(autouse=True)
def sandbox_room_above_pytest(monkeypatch):
    """Runs in this process are sandboxed by default too, in a fork of pytest: its address
    space is several times a fresh pygrub's (about 96 MiB), so the reader's default limit
    (256 MiB, RLIMIT_AS) counts from what pytest maps. A ``python -m pygrub`` keeps 256."""
    from pygrub import settings

    status = Path("/proc/self/status").read_text()
    mapped_mb = int(status.split("VmSize:")[1].split()[0]) >> 10
    monkeypatch.setattr(settings, "DEFAULT_MAX_RAM_MB", mapped_mb + settings.DEFAULT_MAX_RAM_MB)


@pytest.fixture(params=["zstandard", "compression.zstd"])
def zstd_backend(request, monkeypatch) -> str:
    """Each zstd library pygrub.compress decodes with: zstandard below Python 3.14, the
    standard library's compression.zstd from 3.14 on (below it, backports.zstd: the same
    module, so that code path runs here too)."""
    from pygrub import compress

    if request.param == "zstandard":
        if sys.version_info >= (3, 14):
            pytest.skip("Python 3.14+ decodes zstd with compression.zstd only")
        monkeypatch.setattr(compress, "_stdlib_zstd", lambda: None)
    elif sys.version_info < (3, 14):
        from backports import zstd

        monkeypatch.setattr(compress, "_stdlib_zstd", lambda: zstd)
    return request.param


@pytest.fixture
def without_package(monkeypatch):
    """A broken install: ``without_package("lz4")`` makes importing it fail. Without
    zstandard nothing decodes zstd, as below Python 3.14."""
    from pygrub import compress

    def remove(name: str) -> None:
        monkeypatch.setitem(sys.modules, name, None)
        if name == "lz4":
            monkeypatch.setitem(sys.modules, "lz4.block", None)
        if name == "zstandard":
            monkeypatch.setattr(compress, "_stdlib_zstd", lambda: None)

    return remove


def pytest_collection_finish(session: pytest.Session) -> None:
    """A test module with slow work to do outside the tests (the Xen runs of
    test_xen_field.py) starts it as soon as the session's tests are known: not for
    --collect-only, whose process would end under it."""
    if session.config.option.collectonly:
        return
    seen = set()
    for item in session.items:
        module = getattr(item, "module", None)
        if module is not None and module not in seen and hasattr(module, "start_early"):
            seen.add(module)
            module.start_early([i for i in session.items if getattr(i, "module", None) is module])
