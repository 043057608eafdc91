"""What an end-to-end test does when a tool it needs is missing: skip locally, fail on CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(tool: str, reason: str) -> NoReturn:
    """Fail the test under ``CI=true`` (CI installs every tool), else skip it, naming why.

    Args:
        tool: What is missing, e.g. "livekit-server".
        reason: Why, and how to get it.
    """
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{tool} unavailable on CI: {reason}")
    pytest.skip(f"{tool} unavailable: {reason}")
