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
