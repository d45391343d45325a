"""Fixtures for the storyboard compile tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.storyboard.helpers import copy_fixture


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    """A copy of the golden fixture project (both layouts, sheets, no manifest yet)."""
    return copy_fixture("golden", tmp_path / "golden")
