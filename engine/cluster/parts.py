"""The parts folder of a cluster refine: each block's GeoTIFFs and, written only
after they were renamed into place, its completion marker carrying the job's
fingerprint. A part without a marker, or with another job's, is not finished."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from ..errors import MapRefinerError
from ..rasters.files import atomic_path
from .job import Block, ClusterJob

log = logging.getLogger(__name__)
KINDS = ("map", "scores", "coarse")  # the files a part may have
_OURS = re.compile(r"\.?part_\d{5}.*|\.?manifest.*")


def parts_folder(out: Path) -> Path:
    """``county.tif`` -> ``county.parts/`` beside it."""
    return out.with_name(out.stem + ".parts")


def part_path(parts: Path, index: int, kind: str = "map") -> Path:
    suffix = "" if kind == "map" else f".{kind}"
    return parts / f"part_{index:05d}{suffix}.tif"


def marker_path(parts: Path, index: int) -> Path:
    return parts / f"part_{index:05d}.done.json"


def part_kinds(job: ClusterJob) -> list[str]:
    p = job.params
    return [k for k in KINDS if k == "map" or getattr(p, k) is not None]


def write_marker(job: ClusterJob, block: Block, record: dict[str, Any]) -> dict[str, Any]:
    """Say ``block`` is finished: called once its parts are in place. Returns the
    marker's record."""
    record = {"fingerprint": job.fingerprint, "block": block.index, **record}
    with atomic_path(marker_path(job.parts, block.index)) as tmp:
        tmp.write_text(json.dumps(record))
    return record


def read_marker(parts: Path, index: int) -> dict[str, Any] | None:
    try:
        return json.loads(marker_path(parts, index).read_text())
    except (OSError, ValueError):
        return None


def is_finished(job: ClusterJob, block: Block) -> bool:
    """The block's marker is this job's and every part file it names is there."""
    m = read_marker(job.parts, block.index)
    if m is None or m.get("fingerprint") != job.fingerprint:
        return False
    return all(part_path(job.parts, block.index, k).is_file() for k in part_kinds(job))


def check_folder(parts: Path, resume: bool, overwrite: bool) -> bool:
    """Whether ``parts`` holds an earlier refine's files (refused unless resuming or
    overwriting). Writes nothing."""
    if parts.exists() and not parts.is_dir():
        raise MapRefinerError(f"{parts} is a file; the parts of a cluster refine go there.")
    earlier = parts.is_dir() and any(_OURS.fullmatch(f.name) for f in parts.iterdir())
    if earlier and not resume and not overwrite:
        raise MapRefinerError(
            f"{parts} holds the parts of an earlier refine; add --resume to reuse the "
            "finished ones, or --overwrite to start again."
        )
    return earlier


def start(job: ClusterJob, resume: bool, overwrite: bool) -> set[int]:
    """Make the parts folder ready; the blocks already finished (only with ``resume``)."""
    parts = job.parts
    if check_folder(parts, resume, overwrite) and not resume:
        clear(parts)
    parts.mkdir(exist_ok=True)
    with atomic_path(parts / "manifest.json") as tmp:
        tmp.write_text(
            json.dumps(
                {
                    "fingerprint": job.fingerprint,
                    "image": str(job.params.image),
                    "blocks": [[b.x0, b.y0, b.x1, b.y1] for b in job.blocks],
                }
            )
        )
    done = {b.index for b in job.blocks if resume and is_finished(job, b)}
    if resume:
        log.info("resume: %d of %d blocks finished in %s", len(done), len(job.blocks), parts)
    return done


def clear(parts: Path, remove_folder: bool = False) -> None:
    """Delete this engine's files in ``parts`` (nothing else), and the folder if asked
    and empty."""
    if not parts.is_dir():
        return
    for f in parts.iterdir():
        if f.is_file() and _OURS.fullmatch(f.name):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
    if remove_folder:
        with contextlib.suppress(OSError):
            parts.rmdir()  # kept when someone else's files are in it
