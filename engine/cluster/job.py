"""What a cluster refine is: the blocks of whole engine tiles it is cut into, the
parts folder they are written to, and the fingerprint that says a part belongs to it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import overload

from ..errors import MapRefinerError
from ..modelfile.header import DEFAULT_MODEL_PATH
from ..refine.params import RefineParams
from ..refine.refine_pass import RefinePass
from ..refine.tiling import Tile
from ..vocabulary import CLUSTER_FORMATS

#: Blocks are this many tiles on a side by default (16 tiles of 1024 model px).
DEFAULT_BLOCK_TILES = 4
FORMATS = CLUSTER_FORMATS


@dataclass(frozen=True)
class Block:
    """Output pixels ``[x0, x1) x [y0, y1)`` on the input grid: whole tiles of the plan."""

    index: int
    x0: int
    y0: int
    x1: int
    y1: int

    def holds(self, tile: Tile) -> bool:
        return self.x0 <= tile.x0 < self.x1 and self.y0 <= tile.y0 < self.y1


@dataclass(frozen=True)
class ClusterJob:
    """Everything a block task needs; pickled to the workers."""

    params: RefineParams  # paths absolute (or /vsi...), as every worker reads them
    blocks: tuple[Block, ...]
    parts: Path  # the folder the parts are written to, beside the output
    fingerprint: str  # of the input, the model and every setting that changes a pixel
    model_sha256: str
    description: str  # the class map band's description


def plan_blocks(tiles: Iterable[Tile], block_tiles: int) -> tuple[Block, ...]:
    """Blocks of ``block_tiles`` x ``block_tiles`` tiles of the plan, row by row."""
    if block_tiles < 1:
        raise MapRefinerError(f"A block holds at least one tile; got {block_tiles}.")
    tiles = list(tiles)
    cols = {x: i // block_tiles for i, x in enumerate(sorted({t.x0 for t in tiles}))}
    rows = {y: i // block_tiles for i, y in enumerate(sorted({t.y0 for t in tiles}))}
    n_cols = max(cols.values()) + 1
    spans: dict[int, list[int]] = {}
    for t in tiles:
        key = rows[t.y0] * n_cols + cols[t.x0]
        s = spans.setdefault(key, [t.x0, t.y0, t.x1, t.y1])
        s[:] = [min(s[0], t.x0), min(s[1], t.y0), max(s[2], t.x1), max(s[3], t.y1)]
    return tuple(Block(i, *spans[k]) for i, k in enumerate(sorted(spans)))


@overload
def absolute(path: Path) -> Path: ...
@overload
def absolute(path: Path | None) -> Path | None: ...
def absolute(path: Path | None) -> Path | None:
    """A path every worker can read: absolute, unless GDAL's own (/vsicurl/, ...)."""
    if path is None or str(path).startswith("/vsi"):
        return path
    return Path(path).resolve()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_file(params: RefineParams) -> Path:
    return Path(params.model_path) if params.model_path else DEFAULT_MODEL_PATH


def fingerprint(params: RefineParams, p: RefinePass, block_tiles: int, model_sha: str) -> str:
    """A hash of what decides a part's pixels: the input (its grid and, for a local
    file, its size and time), the model file's bytes, and the refine's settings."""
    image = str(params.image)
    stat = os.stat(image) if os.path.exists(image) else None
    info = p.info
    what = {
        "image": image,
        "file": [stat.st_size, stat.st_mtime_ns] if stat else None,
        "grid": [info.width, info.height, list(info.geotransform), info.projection],
        "model": model_sha,
        "bands": p.bands,
        "iterations": p.iterations,
        "resolution": list(p.resolution_m),
        "device": params.device,
        "precision": params.precision,
        "tile_size": p.tile_size,
        "block_tiles": block_tiles,
        "corrections": p.kept is not None,
        "scores": params.scores is not None,
        "coarse": params.coarse is not None,
    }
    if p.detail is not None:  # only then: older jobs' parts keep their fingerprint
        what["detail"] = [p.detail.iterations, p.detail.width, p.detail.height]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()
