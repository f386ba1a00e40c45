"""Keeping a long refine's memory flat, whatever the raster's size.

Two things grow a process's resident memory over thousands of tiles even
though every tile's buffers are freed: glibc keeps freed heap pages (torch
frees tile-sized tensors of slightly different shapes, which fragments the
heap), and GDAL's block cache fills up to ``GDAL_CACHEMAX`` (5% of the
machine's RAM by default: 1.2 GB on a 24 GB machine, several GB on larger
ones). ``bounded_memory`` caps GDAL's cache for the duration of the work
unless the user chose a size (``GDAL_CACHEMAX`` set), and ``release_free_memory``
hands freed heap pages back to the system after each tile.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

from osgeo import gdal

#: GDAL block cache while refining (bytes): a few tile rows of input and output.
REFINE_CACHE_BYTES = 128 * 1024 * 1024


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


def release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``; no-op elsewhere)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@contextmanager
def bounded_memory(cache_bytes: int = REFINE_CACHE_BYTES) -> Iterator[None]:
    """Cap GDAL's block cache inside the block (unless ``GDAL_CACHEMAX`` is set)."""
    previous = gdal.GetCacheMax()
    lower = "GDAL_CACHEMAX" not in os.environ and previous > cache_bytes
    if lower:
        gdal.SetCacheMax(cache_bytes)
    try:
        yield
    finally:
        if lower:
            gdal.SetCacheMax(previous)
        release_free_memory()
