"""The maps a refine computed, kept for the next correction round's refine of the image.

A gated round's map keeps a change from its parent's map only where the round is sure
(gate.py), so its refine runs the parent's networks too, and the parent's parent's: a
chain of N rounds costs N + 1 passes of the networks in every refine (docs/results_
corrections.md "Session 51": Kampala's refine 1.7 -> 4 s over six rounds; about 2.5-3 s a
pass on a 2000 x 2000 px raster on the 2-core CPU). But the parent's gated logits on a
tile are exactly what the refine before the round computed with the parent's file (the
map the user drew on): ``gated_result`` recurses the same way. So each refine of an image
of at most MAX_IMAGE_PIXELS keeps its final logits of every tile (or the iterations the
slider keeps, a trajectory) in a folder of the user's cache, and a round's refine reads
its parent's there instead of running its chain.

A map is found only under a key of everything that made it: the networks' tensors with
their nested parents, their configuration as the image is fed to them (without name,
training record and drawn polygons, at every level), the engine's own source, torch's
and GDAL's versions, the image's files (path, size and modification time of each: a
VRT's sources, a world file) and every setting of the pass (bands, iterations, pixel
size, grids, tile size, detail plan, precision, device), and the tile and the
iterations kept. Anything else is a miss and is computed as before.
Files are written whole (rasters/files.atomic_path); one that cannot be read is a
miss. The folder holds at most MAX_BYTES besides the pass being opened: the oldest
passes go first.

``MAP_REFINER_MAP_CACHE``: the folder (default ``$XDG_CACHE_HOME/map_refiner/maps``, or
``~/.cache/...``), or ``off``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from osgeo import gdal

from ..errors import MapRefinerError
from ..modelfile.config import ModelConfig
from ..rasters.files import atomic_path

log = logging.getLogger(__name__)

ENV = "MAP_REFINER_MAP_CACHE"
FORMAT = 1
MAX_IMAGE_PIXELS = 16_000_000  # larger images are not kept (a loop's rasters are smaller)
MAX_BYTES = 1 << 30  # the folder's whole size

_ENGINE = Path(__file__).resolve().parents[1]
_source_digest: str | None = None


def cache_folder() -> Path | None:
    """Where maps are kept; None when switched off."""
    given = os.environ.get(ENV, "").strip()
    if given.lower() == "off":
        return None
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "map_refiner" / "maps"


def engine_digest() -> str:
    """A digest of the engine's source: a map from other code is never read."""
    global _source_digest
    if _source_digest is None:
        h = hashlib.sha256()
        for path in sorted(_ENGINE.rglob("*.py")):
            h.update(str(path.relative_to(_ENGINE)).encode())
            h.update(path.read_bytes())
        _source_digest = h.hexdigest()
    return _source_digest


def _inference_config(d: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in d.items() if k not in ("name", "training", "corrections")}
    if isinstance(out.get("gate_parent"), dict) and out["gate_parent"]:
        out["gate_parent"] = _inference_config(out["gate_parent"])
    return out


def network_digest(net: torch.nn.Module, config: ModelConfig) -> str:
    """The digest of ``net`` (with its nested gate parents) fed with ``config``."""
    h = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    fed = _inference_config(config.to_dict())
    h.update(json.dumps(fed, sort_keys=True, default=str).encode())
    h.update(json.dumps(list(config.input_curve)).encode())
    return h.hexdigest()


class MapCache:
    """The maps of one pass's settings over one image, by network and tile."""

    def __init__(self, folder: Path, pass_key: str) -> None:
        self.folder = folder / pass_key
        self._digests: dict[int, str] = {}

    @classmethod
    def for_pass(
        cls, files: Sequence[str], pixels: int, settings: dict[str, Any]
    ) -> MapCache | None:
        """The cache of a pass over an image made of ``files`` (GDAL's file list: the
        image, a VRT's sources, world files and side-cars), ``pixels`` on its grid, with
        ``settings``; None when switched off, for a large image, or one not all in plain
        files."""
        folder = cache_folder()
        if folder is None or pixels > MAX_IMAGE_PIXELS or not files:
            return None
        image = []
        for name in sorted(files):
            if str(name).startswith("/vsi"):
                return None
            try:
                st = Path(name).resolve().stat()
            except OSError:
                return None
            image.append([str(Path(name).resolve()), st.st_size, st.st_mtime_ns])
        key = {
            "format": FORMAT,
            "engine": engine_digest(),
            "torch": torch.__version__,
            "gdal": gdal.__version__,
            "image": image,
            "settings": settings,
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
        cache = cls(folder, digest.hexdigest()[:32])
        _trim(folder, cache.folder)
        return cache

    def digest(self, net: torch.nn.Module, config: ModelConfig) -> str:
        found = self._digests.get(id(net))
        if found is None:
            found = self._digests[id(net)] = network_digest(net, config)
        return found

    def _name(self, digest: str, tile: Sequence[int]) -> str:
        return f"{digest[:32]}_{'_'.join(map(str, tile))}"

    def _file(self, digest: str, tile: Sequence[int], keep: Sequence[int] | None) -> Path:
        kept = "final" if keep is None else "it" + "_".join(map(str, keep))
        return self.folder / f"{self._name(digest, tile)}_{kept}.npy"

    def get(
        self,
        net: torch.nn.Module,
        config: ModelConfig,
        tile: Sequence[int],
        keep: Sequence[int] | None,
        shape: Sequence[int],
    ) -> torch.Tensor | None:
        """The logits kept for ``net`` on ``tile`` (with ``keep``'s iterations), of
        ``shape``; None when there are none. A final map is also read off a kept
        trajectory's last iteration."""
        digest = self.digest(net, config)
        arr = _load(self._file(digest, tile, keep))
        if arr is None and keep is None and self.folder.is_dir():
            for path in self.folder.glob(f"{self._name(digest, tile)}_it*.npy"):
                arr = _load(path)
                arr = arr[-1] if arr is not None and arr.ndim == len(shape) + 1 else None
                break
        if arr is None or tuple(arr.shape) != tuple(shape):
            return None
        return torch.from_numpy(arr)

    def put(
        self,
        net: torch.nn.Module,
        config: ModelConfig,
        tile: Sequence[int],
        keep: Sequence[int] | None,
        logits: torch.Tensor,
    ) -> None:
        """Keep ``logits`` (float32) for ``net`` on ``tile``; a failure to write is only
        logged (the refine itself is done)."""
        path = self._file(self.digest(net, config), tile, keep)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.save(f, logits.detach().float().cpu().numpy())
        except (OSError, MapRefinerError) as exc:
            log.debug("map not kept for the next round: %s", exc)

    def lookup(
        self, tile: Sequence[int], keep: Sequence[int] | None, shape: Sequence[int]
    ) -> Callable[[torch.nn.Module, ModelConfig], torch.Tensor | None]:
        """``gated_result``'s reader of a parent's kept map on ``tile``."""
        return lambda net, config: self.get(net, config, tile, keep, shape)


def _load(path: Path) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return arr if arr.dtype == np.float32 else None


def _trim(folder: Path, keep: Path) -> None:
    """The oldest passes' maps removed until the folder holds at most MAX_BYTES; never
    ``keep``'s, the pass being opened (its parents' maps are there)."""
    try:
        passes = [p for p in folder.iterdir() if p.is_dir() and p != keep]
        sizes = {p: sum(f.stat().st_size for f in p.iterdir()) for p in passes}
        ages = {p: p.stat().st_mtime for p in passes}
    except OSError:  # another process trimming: its turn
        return
    total = sum(sizes.values())
    for p in sorted(passes, key=ages.__getitem__):
        if total <= MAX_BYTES:
            break
        shutil.rmtree(p, ignore_errors=True)
        total -= sizes[p]
