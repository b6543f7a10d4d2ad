from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .processes import kill_leftovers


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    yield
    kill_leftovers()
