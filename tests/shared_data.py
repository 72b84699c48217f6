"""Where the developers' shared data lives (``../shared`` next to the repository), and a skip when it is absent.

The shared folder exists on developer machines and in CI, never on a user's machine, so tests that need it
call :func:`shared_path`, which skips the test with the reason instead of failing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def shared_path(*parts: str) -> Path:
    """The path of a file or folder under ``../shared``; skips the calling test when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (it exists for developers and CI only)")
    return path
