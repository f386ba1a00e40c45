"""The memory guards of a long refine: GDAL's cache capped and restored."""

from __future__ import annotations

import os

from osgeo import gdal

from map_refiner.engine.refine.memory import bounded_memory, release_free_memory


def test_gdal_cache_is_capped_inside_and_restored_after(monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    before = gdal.GetCacheMax()
    gdal.SetCacheMax(1 << 30)
    try:
        with bounded_memory(64 << 20):
            assert gdal.GetCacheMax() == 64 << 20
        assert gdal.GetCacheMax() == 1 << 30
        try:
            with bounded_memory(64 << 20):
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        assert gdal.GetCacheMax() == 1 << 30
    finally:
        gdal.SetCacheMax(before)


def test_a_users_gdal_cachemax_is_left_alone(monkeypatch):
    monkeypatch.setenv("GDAL_CACHEMAX", "2048")
    before = gdal.GetCacheMax()
    with bounded_memory(64 << 20):
        assert gdal.GetCacheMax() == before
    release_free_memory()  # harmless anywhere
    assert os.environ["GDAL_CACHEMAX"] == "2048"
