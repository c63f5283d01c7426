"""Optional extras a test needs: skipped with the reason in a user's clone, a failure in CI (``CI=true``,
where ``make`` installs every extra)."""

from __future__ import annotations

import importlib.util
import os

import pytest


def need_ray() -> None:
    """Ray (the ``scale`` extra) is importable, else skip (or fail when ``CI=true``)."""
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Ray is required when CI=true (`make` installs the scale extra)")
        pytest.skip("Ray is not installed (pip install 'orderflow[scale]')")
