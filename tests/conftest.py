"""Shared pytest fixtures (keep this file small; one fixture per real need)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write `text` (dedented lines, first line the header) to tmp_path/`name`; return the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        lines = [line.strip() for line in text.strip().splitlines()]
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
