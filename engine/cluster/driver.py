"""The driver of a cluster refine: plan the blocks, hand the missing ones to Dask,
wait, assemble. Killed, it leaves finished parts that ``resume`` reuses."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MapRefinerError
from ..limits import coarse_note
from ..progress import CancelFn, ProgressFn, Reporter, make_reporter
from ..refine.params import RefineParams, RefineResult
from ..refine.pipeline import check_outputs, chosen_model, map_description, open_refine_pass
from ..refine.refine_pass import RefinePass
from . import assemble, parts
from .block import refine_block
from .job import (
    DEFAULT_BLOCK_TILES,
    FORMATS,
    ClusterJob,
    absolute,
    file_sha256,
    model_file,
    plan_blocks,
)
from .job import fingerprint as job_fingerprint
from .scheduler import CONNECT_TIMEOUT_S, check_scheduler, connect, import_distributed

log = logging.getLogger(__name__)
BlockTask = Callable[[ClusterJob, int], dict[str, Any]]


@dataclass(frozen=True)
class ClusterOptions:
    scheduler: str  # tcp://HOST:PORT, or local:N
    out_format: str = "gtiff"  # or "vrt": a VRT over the parts
    resume: bool = False  # reuse this refine's finished parts
    block_tiles: int = DEFAULT_BLOCK_TILES  # a block is this many tiles on a side
    connect_timeout_s: float = CONNECT_TIMEOUT_S  # for a scheduler's address


@dataclass
class ClusterRun:
    result: RefineResult
    blocks: int
    computed: list[int]  # the blocks this run computed (the others were resumed)
    records: list[dict[str, Any]]  # their tasks' records (times, worker, peak memory)
    assemble_s: float  # the driver's assembly of the parts


def refine_on_cluster(
    params: RefineParams,
    options: ClusterOptions,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    task: BlockTask = refine_block,
) -> ClusterRun:
    """``refine_raster`` spread over a Dask cluster, block by block; the same pixels."""
    t0 = time.perf_counter()
    rep = make_reporter(progress, is_cancelled)
    check_supported(params, options)
    import_distributed()  # before anything is written
    check_outputs(params, options.out_format == "vrt")
    params, choice = chosen_model(params)  # the workers get the file chosen, by name
    job, p = plan_job(params, options.block_tiles)
    params = job.params
    parts.check_folder(job.parts, options.resume, params.overwrite)
    with connect(options.scheduler, options.connect_timeout_s) as client:  # nothing written yet
        done = parts.start(job, options.resume, params.overwrite)
        todo = [b.index for b in job.blocks if b.index not in done]
        log.info(
            "refining %s on %s: %d blocks of up to %d x %d tiles, %d to compute",
            Path(params.image).name,
            options.scheduler,
            len(job.blocks),
            options.block_tiles,
            options.block_tiles,
            len(todo),
        )
        records = _run(job, todo, client, task, rep.sub(0.0, 0.95), len(done))
    _check_parts(job)
    t1 = time.perf_counter()
    if options.out_format == "vrt":
        assemble.assemble_vrts(job, p.info, p.config)
    else:
        assemble.assemble_geotiff(job, p.info, p.config)
        parts.clear(job.parts, remove_folder=True)
    assemble_s = time.perf_counter() - t1
    rep.report(1.0)
    config = p.config
    result = RefineResult(
        Path(params.out),
        params.scores,
        p.iterations,
        config.class_names,
        config.colours,
        time.perf_counter() - t0,
        f"Dask {options.scheduler}",
        p.tile_count(),
        (p.grids.model_width, p.grids.model_height),
        params.coarse,
        p.kept.features if p.kept is not None else 0,
        model_path=params.model_path,
        model_note=choice.note if choice is not None else "",
        scale_note=coarse_note(*p.resolution_m, config.ground_resolution_m),
        colour_note=p.colour_note,
        corrections_note=p.kept_note,
    )
    return ClusterRun(result, len(job.blocks), todo, records, assemble_s)


def plan_job(params: RefineParams, block_tiles: int) -> tuple[ClusterJob, RefinePass]:
    """The job of ``params`` (its paths made absolute for the workers) and the driver's
    own pass over the raster (its grid, tiles and classes)."""
    params = dataclasses.replace(
        params,
        image=absolute(params.image),
        out=absolute(params.out),
        model_path=absolute(params.model_path),
        scores=absolute(params.scores),
        coarse=absolute(params.coarse),
    )
    p = open_refine_pass(params)
    model_sha = file_sha256(model_file(params))
    job = ClusterJob(
        params,
        plan_blocks(p.tiles(), block_tiles),
        parts.parts_folder(Path(params.out)),
        job_fingerprint(params, p, block_tiles, model_sha),
        model_sha,
        map_description(p),
    )
    return job, p


def check_supported(params: RefineParams, options: ClusterOptions) -> None:
    """Refuse what a cluster refine does not do, rather than ignore it."""
    check_scheduler(options.scheduler)
    if options.out_format not in FORMATS:
        raise MapRefinerError(f"--format takes {' or '.join(FORMATS)}; got {options.out_format}.")
    if params.prior is not None:
        raise MapRefinerError("--prior is not supported with --scheduler yet; refine without it.")
    if params.keep_iterations is not None:
        raise MapRefinerError("Keeping every iteration is not supported on a cluster.")


def _run(
    job: ClusterJob, todo: list[int], client: Any, task: BlockTask, rep: Reporter, done: int
) -> list[dict[str, Any]]:
    """Blocks ``todo`` on the cluster; their records, in the order they finished."""
    if not todo:
        return []
    distributed = import_distributed()
    total, records = len(job.blocks), []
    futures = client.map(task, [job] * len(todo), todo, pure=False)
    try:
        for n, fut in enumerate(distributed.as_completed(futures), start=1):
            rep.check()
            try:
                records.append(fut.result())
            except distributed.KilledWorker as exc:
                raise MapRefinerError(
                    "A block's workers died again and again (out of memory?); the "
                    "finished parts are kept: run again with --resume.",
                    details=repr(exc),
                ) from exc
            rep.report((done + n) / total)
    finally:
        client.cancel(futures)
    return records


def _check_parts(job: ClusterJob) -> None:
    missing = [b.index for b in job.blocks if not parts.is_finished(job, b)]
    if missing:
        raise MapRefinerError(
            f"{len(missing)} block(s) were computed but their parts are not in {job.parts}: "
            "the workers must write to a folder this machine sees at the same path "
            "(put --out on a shared disk)."
        )
