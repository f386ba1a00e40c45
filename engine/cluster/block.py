"""A block task, run by a Dask worker: a pure function of the job and the block's
index. It opens the pass itself (reading its window through GDAL, so any path GDAL
reads works), runs the same per-tile code as ``refine_raster`` and writes its parts
atomically, then its completion marker."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from ..errors import MapRefinerError
from ..rasters.read import RasterInfo
from ..rasters.write import refined_writer
from ..refine.memory import bounded_memory, release_free_memory
from ..refine.pipeline import open_refine_pass, refine_tile
from ..refine.refine_pass import RefinePass
from .job import Block, ClusterJob, file_sha256, model_file
from .parts import part_path, write_marker

_local = threading.local()  # one open pass per worker thread (GDAL datasets are not shared)


def refine_block(job: ClusterJob, index: int) -> dict[str, Any]:
    """Refine block ``index`` of ``job`` into its parts; returns its marker's record
    (the block, its times, the worker's process and peak memory)."""
    t0 = time.perf_counter()
    torch.set_num_threads(1)  # one task per worker thread, one torch thread each
    p = _pass(job)
    opened = time.perf_counter() - t0
    block = job.blocks[index]
    config = p.config
    with ExitStack() as stack:
        stack.enter_context(bounded_memory())
        info = _window_info(p.info, block)
        writer = stack.enter_context(
            refined_writer(
                info,
                part_path(job.parts, index),
                config.class_names,
                config.colours,
                part_path(job.parts, index, "scores") if job.params.scores else None,
                job.description,
            )
        )
        coarse = None
        if job.params.coarse is not None:
            coarse = stack.enter_context(
                refined_writer(
                    info, part_path(job.parts, index, "coarse"), config.class_names, config.colours
                )
            )
        tiles, t1 = 0, time.perf_counter()
        for tile in p.tiles():
            if not block.holds(tile):
                continue
            maps = refine_tile(p, tile, job.params.scores is not None, coarse is not None)
            x, y = tile.x0 - block.x0, tile.y0 - block.y0
            writer.write(x, y, maps.classes, maps.probs)
            if coarse is not None and maps.coarse is not None:
                coarse.write(x, y, maps.coarse, None)
            del maps
            release_free_memory()
            tiles += 1
        computed = time.perf_counter() - t1
    record = {
        "tiles": tiles,
        "open_s": round(opened, 4),  # the pass, opened once per worker thread
        "tiles_s": round(computed, 4),  # the tiles through the networks and into the part
        "seconds": round(time.perf_counter() - t0, 4),  # the whole task, parts placed
        "host": os.uname().nodename,
        "pid": os.getpid(),
        "peak_rss_mb": _peak_rss_mb(),
    }
    return write_marker(job, block, record)


def _pass(job: ClusterJob) -> RefinePass:
    """The job's pass, opened once per worker thread and kept for its next blocks."""
    key = (job.fingerprint, job.model_sha256)
    cached = getattr(_local, "cached", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    _local.cached = None
    if file_sha256(model_file(job.params)) != job.model_sha256:
        raise MapRefinerError(
            f"The model file {model_file(job.params)} on worker {os.uname().nodename} is not "
            "the driver's; give --model a file every worker reads the same."
        )
    p = open_refine_pass(job.params)
    torch.set_num_threads(1)
    _local.cached = (key, p)
    return p


def _window_info(info: RasterInfo, b: Block) -> RasterInfo:
    """The input grid cut to the block (the part's own georeferencing)."""
    g = info.geotransform
    gt = (
        g[0] + b.x0 * g[1] + b.y0 * g[2],
        g[1],
        g[2],
        g[3] + b.x0 * g[4] + b.y0 * g[5],
        g[4],
        g[5],
    )
    return dataclasses.replace(info, width=b.x1 - b.x0, height=b.y1 - b.y0, geotransform=gt)


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM, Linux), MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
