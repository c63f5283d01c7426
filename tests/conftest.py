"""Shared fixtures.

Recorded market data lives in ``../shared/data`` beside the repository (or ``ORDERFLOW_SHARED_DATA``).
A user's clone does not have it: tests that need it skip with a reason. In CI (``CI=true``) a missing
directory is an error, so a broken CI setup cannot pass by skipping.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests never read or write the user's own store, registry, journal or kill switch, and parallel test
# processes never share them: the user data directory is a fresh one per test process, and the
# environment variables that point elsewhere are cleared (tests that need them set them).
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="orderflow-tests-")
atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], True)
for _name in [n for n in os.environ if n.startswith("ORDERFLOW_") and n != "ORDERFLOW_SHARED_DATA"]:
    del os.environ[_name]


def shared_data_dir() -> Path:
    env = os.environ.get("ORDERFLOW_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if not d.is_dir():
        msg = f"recorded market data not found at {d} (set ORDERFLOW_SHARED_DATA or place ../shared/data)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg + " - required when CI=true")
        pytest.skip(msg)
    return d


@pytest.fixture()
def store(tmp_path):
    from orderflow.data.store import Store

    return Store(tmp_path / "store")
