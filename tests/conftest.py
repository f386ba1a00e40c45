"""Suite-wide guard: no test may write into the shared data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _listing(root: Path) -> dict[str, float]:
    return (
        {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}
        if root.is_dir()
        else {}
    )


@pytest.fixture(scope="session", autouse=True)
def shared_data_untouched() -> Iterator[None]:
    """Fails the run if any file under ../shared/data was added or modified."""
    before = _listing(SHARED_DATA)
    yield
    after = _listing(SHARED_DATA)
    changed = sorted(k for k in after if before.get(k) != after[k])
    assert not changed, f"tests wrote into ../shared/data: {changed}"


@pytest.fixture(scope="session", autouse=True)
def no_kept_maps() -> Iterator[None]:
    """Refines keep no maps for later rounds (engine/networks/map_cache.py) unless a test
    turns it on in a folder of its own: a map one test computed is never another's (a
    test that patches the arithmetic would read the unpatched map), and nothing is written
    into the user's cache."""
    import os

    before = os.environ.get("MAP_REFINER_MAP_CACHE")
    os.environ["MAP_REFINER_MAP_CACHE"] = "off"
    yield
    if before is None:
        os.environ.pop("MAP_REFINER_MAP_CACHE", None)
    else:
        os.environ["MAP_REFINER_MAP_CACHE"] = before
