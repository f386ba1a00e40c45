"""One refine pass, set up in one place: the raster opened, the model loaded,
device and precision resolved, bands checked and tiles planned, for
``refine_raster``, the trajectory and ``refine_array`` alike; then each tile read
once and run through the networks, with the model's kept corrections at hand."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from ..device import configure_threads, device_label, inference_autocast, resolve_device
from ..errors import MapRefinerError
from ..labels.kept import KeptCorrections, OnLattice, from_config, shown_on, window_grid
from ..limits import check_iterations
from ..modelfile.config import ModelConfig
from ..modelfile.io import load_model
from ..networks.gate import Gate, gate_chain, gated_result
from ..networks.map_cache import MapCache
from ..networks.models import MapRefinerNet
from ..rasters.grid import GridSpec, grid_of, scaled
from ..rasters.read import (
    RasterInfo,
    check_bands,
    ground_resolution,
    open_image,
    raster_info,
    unnamed_bands_note,
)
from .predict import (
    MEASURE,
    WindowResult,
    colours_matched,
    for_image,
    model_image,
    predict_tile,
    stack_bands,
)
from .prior import Prior
from .registration import (
    EDGE_AGREEMENT,
    EDGE_SUPPORT,
    SEARCH_M,
    Offset,
    ShiftField,
    agreement_and_norms,
    best_offset,
    beyond_the_search,
    edge_offset,
    edge_ratio,
    edge_strength,
    edge_sum,
    edge_support,
    mirrors_of,
    outline_surfaces,
    peak_correlation,
    peak_gain,
    region_agreements,
    region_shifts,
    unplaceable,
)
from .tiling import (
    Detail,
    Grids,
    Tile,
    count_tiles,
    lattice,
    lattice_tiles,
    make_detail,
    make_grids,
    plan_tiles,
)

log = logging.getLogger(__name__)
#: The side (input pixels) of the windows the reshape check runs the networks on: on the
#: whole Xiamen mosaic with its OSM layer, nine windows of 2048 px cost 21-27 s of an
#: 86-98 s refine, nine of 1024 px 4.6 s of a 65 s one (session 24, this 2-core CPU).
RESHAPE_SIDE_PX = 1024
PathLike = Union[str, Path]
#: Smallest tile, in model pixels.
MIN_TILE = 16


@dataclass
class RefinePass:
    """A raster and a model ready to run, tile by tile."""

    ds: Any  # gdal.Dataset
    info: RasterInfo
    net: MapRefinerNet
    config: ModelConfig
    device: torch.device
    autocast: torch.dtype | None
    bands: list[int]
    iterations: int
    resolution_m: tuple[float, float]  # ground size of an input pixel along x and y
    grids: Grids
    tile_size: int
    kept: KeptCorrections | None = None  # drawn corrections burned over this image's map
    kept_note: str = ""  # drawn corrections on this grid left out: the image differs there
    prior: Prior | None = None  # a map the RNN starts from instead of the coarse CNN's
    prior_keep: float = 0.0  # the prior's class stays where the refined map gives it
    # at least this probability (prior.keep_prior; 0: never)
    prior_keep_objects: float | None = None  # the same for the prior's classes other than
    # background (its drawn objects; None: prior_keep for every class)
    prior_as_drawn: bool = False  # the prior's class stays wherever it has one, whatever
    # the refined map says (the image's edges doubt the model: pipeline.refine_raster)
    detail: Detail | None = None  # the last iterations again on a finer grid
    gate: Gate | None = None  # a correction round's parent and change gate (gate.py)
    colour_note: str = ""  # how the image's colours were matched ("": read as it is;
    # predict.colours_matched)
    cache: MapCache | None = None  # where this pass's maps are kept for the next round's
    # refine, and its gate parents' are read (map_cache.py; None: not kept)

    @property
    def background(self) -> int | None:
        """The index of the model's background class (None: it has none by that name):
        the prior's classes other than it are its objects (prior_keep_objects)."""
        return self.config.background

    @property
    def device_label(self) -> str:
        return device_label(self.device, self.autocast)

    @property
    def pixel_size_m(self) -> float:
        rx, ry = self.resolution_m
        return float((rx * ry) ** 0.5)

    def tiles(self) -> Iterator[Tile]:
        return plan_tiles(self.grids, self.iterations, self.tile_size, self.detail)

    def tile_count(self) -> int:
        return count_tiles(self.grids, self.tile_size)

    def predict(
        self,
        tile: Tile,
        keep: Sequence[int] | None = None,
        from_prior: bool = True,
        fine: bool = True,
    ) -> WindowResult:
        """Scores of ``tile`` on the input grid: the last iteration ``(K, h, w)``, or
        the iterations listed in ``keep`` ``(len(keep), K, h, w)``; from the prior when
        there is one (unless ``from_prior`` is False), else from the coarse CNN; the
        last one through the detail iterations when the pass has them (unless ``fine``
        is False: a tile not planned for them)."""
        start = self._prior_heat(tile) if from_prior else None
        memo: dict | None = {} if self.gate is not None and start is None else None

        def run(net: MapRefinerNet, config: ModelConfig) -> WindowResult:
            return predict_tile(
                net,
                config,
                self.ds,
                self.bands,
                self.grids,
                tile,
                self.iterations,
                self.device,
                keep=keep,
                autocast=self.autocast,
                start=start,
                detail=self.detail if fine else None,
                memo=memo,
            )

        res = run(self.net, self.config)
        if start is not None:  # a prior's map is no round's change, nor kept for one
            return res
        at = [tile.x0, tile.y0, tile.x1, tile.y1, tile.mx0, tile.my0, tile.mx1, tile.my1]
        at.append(int(fine and self.detail is not None))
        logits = res.logits
        if self.gate is not None:
            kept = None if self.cache is None else self.cache.lookup(at, keep, logits.shape)
            logits = gated_result(self.gate, logits, lambda n, c: run(n, c).logits, kept)
        if self.cache is not None:  # for the next round's refine of this image
            self.cache.put(self.net, self.config, at, keep, logits)
        return WindowResult(logits, res.valid)

    def _prior_heat(self, tile: Tile) -> tuple[np.ndarray, np.ndarray] | None:
        if self.prior is None:
            return None
        return self.prior.heat(
            window_grid(self.model_grid(), tile.mx0, tile.my0, tile.mx1, tile.my1)
        )

    def prior_classes(self, tile: Tile) -> np.ndarray | None:
        """The prior's class on ``tile``'s own pixels of the image (-1 where it has none),
        when the prior's pixels are to be kept where the refined map allows."""
        if self.prior is None or (self.prior_keep <= 0 and not self.prior_as_drawn):
            return None
        return self.prior.classes_at(
            window_grid(grid_of(self.ds), tile.x0, tile.y0, tile.x1, tile.y1)
        )

    def register_prior(
        self, search_m: float = SEARCH_M, regions: bool = True, edges: bool = True
    ) -> Offset:
        """Move the prior by the shift that best lays it over the model's own refined map
        on a lattice of windows (registration.py), when that shift is clear and longer
        than a model pixel; or, where the windows' regions clearly disagree, by a shift
        varying across the image (registration.region_shifts and ShiftField; unless
        ``regions`` is False); a move the image's own edges contradict is undone (unless
        ``edges`` is False). Returns the offset found for the whole prior and what was
        done."""
        if self.prior is None:
            return Offset(0.0, 0.0, 0.0, False, "no prior to place")
        pixel_m = float(min(self.resolution_m))
        radius = max(1, int(math.ceil(search_m / pixel_m)))
        full = grid_of(self.ds)
        surfaces, parts, norms = [], [], []
        for tile in lattice_tiles(self.grids, self.iterations):
            res = self.predict(tile, from_prior=False, fine=False)
            probs = torch.softmax(res.logits.float(), dim=0).cpu().numpy()
            prior = self.prior.classes_at(window_grid(full, tile.x0, tile.y0, tile.x1, tile.y1))
            surface, norm = agreement_and_norms(prior, probs, res.valid, radius)
            surfaces.append(surface)
            norms.append(norm)
            parts += [
                (tile.y0 + y, tile.x0 + x, c)
                for y, x, c in region_agreements(prior, probs, res.valid, radius)
            ]
        correlation = peak_correlation(surfaces, norms)
        log.info(
            "prior registration: correlation %.3f at the best shift, %.1f %% better than none",
            correlation,
            100 * peak_gain(surfaces),
        )
        weak = unplaceable(correlation) if surfaces else None
        if weak is not None:  # a map that means nothing places nothing
            if edges:  # does the image follow the prior? then the model misreads it
                support = self.prior_edge_support()
                misread = support is not None and support >= EDGE_SUPPORT
                weak = replace(weak, edge_support=support, misread=misread)
                # does the image follow it better moved onto its edges?
                weak = self._onto_edges_if_followed(weak, search_m)
            log.info("prior registration: %s (edge support %s)", weak.why, weak.edge_support)
            return weak
        offset = best_offset(surfaces, pixel_m)
        varying = region_shifts(parts, pixel_m, offset) if regions else None
        gt = full.geotransform
        move = ""  # how the prior is moved, in words ("2.0 m west and 1.5 m north")
        if varying is not None:
            self.prior.field = ShiftField.from_points(
                [
                    (gt[0] + r.x * gt[1], gt[3] + r.y * gt[5], r.dx * gt[1], r.dy * gt[5])
                    for r in varying
                ]
            )
            metres = [float(np.hypot(r.dy, r.dx) * pixel_m) for r in varying]
            lo, hi = f"{min(metres):.1f}", f"{max(metres):.1f}"
            span = f"{lo} m" if lo == hi else f"{lo} to {hi} m"
            for r, m in zip(varying, metres):
                log.info(
                    "prior region at pixel (%.0f, %.0f): %.1f m, (%+.2f, %+.2f) px (%s)",
                    r.x,
                    r.y,
                    m,
                    r.dx,
                    r.dy,
                    "its own peak" if r.own else "no clear peak of its own",
                )
            move = f"by {span}, varying across the image ({len(varying)} regions)"
            offset = replace(offset, applied=True, why=f"moved {move}")
        elif offset.applied:
            self.prior.shift = (offset.dx * gt[1], offset.dy * gt[5])
            move = self._in_words(offset.dy, offset.dx)
            offset = replace(offset, why=f"moved {move} to fit the image")
        if offset.applied and edges:
            offset = self._edges_second_opinion(offset, move, search_m)
        offset = replace(
            offset,
            why=beyond_the_search(offset.why, parts, search_m, radius),
            correlation=correlation,
        )
        log.info("prior registration: %s", offset.why)
        return offset

    def _edges_second_opinion(self, offset: Offset, move: str, search_m: float) -> Offset:
        """Undo the prior's move (``move``: it in words) when it lays the prior's outlines
        on weaker edges of the image than where it was drawn (registration.edge_ratio: the
        model's map misreads some imagery, and a right prior would be dragged off its
        roofs); then move it by the shift that lays its outlines on the image's strongest
        edges instead, when that is clear (registration.edge_offset, session 40)."""
        ratio = self.prior_edge_ratio()
        log.info("prior registration: edges under the moved outlines %s", ratio)
        if ratio is None or ratio >= EDGE_AGREEMENT:
            return replace(offset, edge_ratio=ratio)
        assert self.prior is not None
        self.prior.shift, self.prior.field = (0.0, 0.0), None
        doubt = (
            f"the model's map would move it {move}, but that lays its outlines on weaker "
            f"edges of the image ({ratio:.2f} times as strong as where it is drawn); the "
            "model may misread this imagery"
        )
        found = self._move_onto_edges(search_m)
        if isinstance(found, str):
            return replace(offset, applied=False, edge_ratio=ratio, why=f"left in place: {doubt}")
        return self._moved_by_edges(offset, found, doubt, edge_ratio=ratio)

    def _onto_edges_if_followed(self, weak: Offset, search_m: float) -> Offset:
        """A prior the model's map cannot place: moved by registration.edge_offset (a
        shift that lays its outlines on clearly stronger edges and stands out of the
        search) when the image's edges follow it there (EDGE_SUPPORT), a misreading
        model's prior off by a shift (session 41); else ``weak`` as it is, the prior
        where drawn."""
        assert self.prior is not None
        found = self._move_onto_edges(search_m)
        if isinstance(found, str):
            return weak
        support = self.prior_edge_support()
        if support is None or support < EDGE_SUPPORT:
            self.prior.shift = (0.0, 0.0)
            return weak
        doubt = weak.why.removeprefix("left in place: ")
        return self._moved_by_edges(weak, found, doubt, edge_support=support, misread=True)

    def _move_onto_edges(self, search_m: float) -> tuple[float, float, float] | str:
        """The prior moved by registration.edge_offset (its shift set): that shift in
        image pixels ``(dy, dx)`` and its gain; or why there is none (the prior left)."""
        assert self.prior is not None
        found = self._edge_offset(search_m)
        log.info("prior registration: by the image's edges %s", found)
        if isinstance(found, str):
            return found
        dy_m, dx_m, gain = found  # model pixels
        dy, dx = dy_m / self.grids.scale_y, dx_m / self.grids.scale_x  # image pixels
        gt = grid_of(self.ds).geotransform
        self.prior.shift = (dx * gt[1], dy * gt[5])
        return dy, dx, gain

    def _moved_by_edges(
        self, offset: Offset, found: tuple[float, float, float], doubt: str, **measured: Any
    ) -> Offset:
        """``offset`` as the edge move ``found`` (image pixels, gain) made it, the note
        ending with ``doubt`` (why the model's own placing was not taken)."""
        dy, dx, gain = found
        return replace(
            offset,
            dy=dy,
            dx=dx,
            metres=float(np.hypot(dy * self.resolution_m[1], dx * self.resolution_m[0])),
            applied=True,
            by_edges=True,
            why=f"moved {self._in_words(dy, dx)} onto the image's edges ({gain:.2f} times "
            f"as strong as where it is drawn): {doubt}",
            **measured,
        )

    def _in_words(self, dy: float, dx: float) -> str:
        """A shift of ``(dy, dx)`` image pixels in metres on the ground, as the notes say
        it ("2.0 m west and 1.5 m north")."""
        east, north = dx * self.resolution_m[0], -dy * self.resolution_m[1]
        return (
            f"{abs(east):.1f} m {'east' if east >= 0 else 'west'} and "
            f"{abs(north):.1f} m {'north' if north >= 0 else 'south'}"
        )

    def _edge_offset(self, search_m: float) -> tuple[float, float, float] | str:
        """registration.edge_offset of the prior as drawn over the lattice windows' model
        grid: the shift (model pixels) that lays its outlines on the strongest edges,
        clearly beyond its mirror images' best (registration.mirrored_surfaces)."""
        assert self.prior is not None
        mgrid = self.model_grid()
        pixel_m = float(self.config.ground_resolution_m)
        radius = max(1, int(math.ceil(search_m / pixel_m)))
        surfaces, mirrors = [], [np.zeros((2 * radius + 1,) * 2)] * 3
        for tile in lattice_tiles(self.grids, self.iterations):
            grid = window_grid(mgrid, tile.mx0, tile.my0, tile.mx1, tile.my1)
            strength = self._edge_strength(tile)
            classes = self.prior.classes_at(grid)
            own, *mirrored = outline_surfaces([classes, *mirrors_of(classes)], strength, radius)
            surfaces.append(own)
            mirrors = [m + n for m, n in zip(mirrors, mirrored)]
        return edge_offset(surfaces, pixel_m, mirrors)

    def prior_edge_ratio(self) -> float | None:
        """Mean edge strength of the image under the placed prior's outlines over that
        under the prior as drawn, on the model grid of the registration's lattice windows
        (registration.edge_ratio; None: no outline on the image)."""
        if self.prior is None:
            return None
        drawn = copy.copy(self.prior)
        drawn.shift, drawn.field = (0.0, 0.0), None
        (placed, as_drawn), _ = self._edge_sums([self.prior, drawn])
        return edge_ratio(placed, as_drawn)

    def prior_reshape_ratio(self) -> float | None:
        """Mean edge strength of the image under the outlines of the map the networks
        make from the prior over that under the prior's own outlines (where it is
        placed), on the model grid of the registration's lattice windows: under 1 the
        model reshapes the prior onto weaker edges of the image (registration.
        RESHAPE_AGREEMENT). None: no outline on the image. Run after the prior is placed
        and calibrated: it is the refine's own start."""
        if self.prior is None:
            return None
        mgrid = self.model_grid()
        made, own = [0.0, 0], [0.0, 0]
        for tile in self._reshape_tiles():
            res = self.predict(tile, from_prior=True, fine=False)
            cls = np.where(res.valid, res.logits.float().argmax(0).cpu().numpy(), -1)
            # the model window's pixels whose centres lie on the output tile
            ix = np.floor((np.arange(tile.mx0, tile.mx1) + 0.5) / self.grids.scale_x)
            iy = np.floor((np.arange(tile.my0, tile.my1) + 0.5) / self.grids.scale_y)
            ix, iy = ix.astype(np.int64) - tile.x0, iy.astype(np.int64) - tile.y0
            okx, oky = (ix >= 0) & (ix < cls.shape[1]), (iy >= 0) & (iy < cls.shape[0])
            if not okx.any() or not oky.any():
                continue
            inside = np.ix_(oky, okx)
            strength = self._edge_strength(tile)[inside]
            window = window_grid(mgrid, tile.mx0, tile.my0, tile.mx1, tile.my1)
            prior = self.prior.classes_at(window)[inside]
            for classes, acc in ((cls[np.ix_(iy[oky], ix[okx])], made), (prior, own)):
                total, count = edge_sum(strength, classes)
                acc[0] += total
                acc[1] += count
        return edge_ratio((made[0], int(made[1])), (own[0], int(own[1])))

    def _reshape_tiles(self) -> list[Tile]:
        """The windows prior_reshape_ratio runs the networks on: smaller than the
        registration's (RESHAPE_SIDE_PX; the check costs a predict of each), up to three
        along each axis, as many as the image's shorter side holds without overlap."""
        short = min(self.grids.width, self.grids.height)
        windows = 1 if short <= RESHAPE_SIDE_PX else 2 if short <= 3 * RESHAPE_SIDE_PX else 3
        return lattice_tiles(self.grids, self.iterations, windows, RESHAPE_SIDE_PX)

    def prior_edge_support(self) -> float | None:
        """Mean edge strength of the image under the prior's outlines (where it is now)
        over the image's mean edge strength, on the model grid of the registration's
        lattice windows (registration.edge_support; None: no outline on the image)."""
        if self.prior is None:
            return None
        (outlines,), image = self._edge_sums([self.prior])
        return edge_support(outlines, image)

    def _edge_sums(
        self, priors: Sequence[Prior]
    ) -> tuple[list[tuple[float, int]], tuple[float, int]]:
        """Summed edge strength and pixel count under each prior's outlines, and over
        the image, on the model grid of the registration's lattice windows."""
        mgrid = self.model_grid()
        sums = [[0.0, 0] for _ in priors]
        image = [0.0, 0]
        for tile in lattice_tiles(self.grids, self.iterations):
            grid = window_grid(mgrid, tile.mx0, tile.my0, tile.mx1, tile.my1)
            strength = self._edge_strength(tile)
            image[0] += float(strength.sum())
            image[1] += int((strength > 0).sum())
            for prior, acc in zip(priors, sums):
                total, count = edge_sum(strength, prior.classes_at(grid))
                acc[0] += total
                acc[1] += count
        return [(float(a), int(b)) for a, b in sums], (float(image[0]), int(image[1]))

    def _edge_strength(self, tile: Tile) -> np.ndarray:
        """The image's edge strength (registration.edge_strength) on ``tile``'s model
        window."""
        img = model_image(
            self.ds,
            self.bands,
            self.grids,
            self.config,
            tile.mx0,
            tile.my0,
            tile.mx1,
            tile.my1,
            self.device,
        )
        return edge_strength(img.float().cpu().numpy())

    def model_grid(self) -> GridSpec:
        """The model grid over the image (same extent, the model's pixels)."""
        return scaled(grid_of(self.ds), self.grids.model_width, self.grids.model_height)

    def calibrate_prior(self, windows: int = 3, side: int = 512) -> None:
        """The prior's heat vectors from the CNN's own on this image: ``windows`` x
        ``windows`` model-grid windows of ``side`` px on a fixed lattice (the same for
        any tile size), the CNN's mean heat per class it calls (prior.calibration)."""
        if self.prior is None:
            return
        from ..networks.inference import coarse_scores
        from ..networks.models import pad_to_stride
        from .predict import model_image
        from .prior import calibration

        mw, mh = self.grids.model_width, self.grids.model_height
        heats, valids = [], []
        for y in lattice(mh, side, windows):
            for x in lattice(mw, side, windows):
                x0, y0 = x // 4 * 4, y // 4 * 4
                x1, y1 = min(mw, x0 + side), min(mh, y0 + side)
                img = model_image(
                    self.ds, self.bands, self.grids, self.config, x0, y0, x1, y1, self.device
                )
                with torch.inference_mode():
                    heat = coarse_scores(self.net.coarse, pad_to_stride(img[None]))
                h, w = img.shape[-2:]
                heats.append(heat[0, :, :h, :w].float().cpu().numpy())
                valids.append((img != 0).any(0).cpu().numpy())
        self.prior.class_heat = calibration(heats, valids, self.prior.strength)

    def drawn(self, tile: Tile) -> np.ndarray | None:
        """The kept corrections' classes on ``tile`` (IGNORE where none), or None."""
        if self.kept is None:
            return None
        return self.kept.labels_on(window_grid(self.kept.grid, tile.x0, tile.y0, tile.x1, tile.y1))


def check_tile_size(tile_size: int) -> None:
    if int(tile_size) < MIN_TILE:
        raise MapRefinerError(
            f"The tile size must be at least {MIN_TILE} model pixels; got {tile_size}."
        )


def open_pass(
    image: PathLike,
    model_path: PathLike | None = None,
    *,
    model: tuple[MapRefinerNet, ModelConfig] | None = None,
    device: str = "auto",
    precision: str = "auto",
    bands: Sequence[int] | None = None,
    iterations: int | None = None,
    input_resolution_m: float | None = None,
    tile_size: int = 1024,
    keep_corrections: bool = True,
    detail_iterations: int | None = 0,
    detail_resolution_m: float | None = None,
    match_colours: bool = True,
) -> RefinePass:
    """Open ``image``, load the model (``model`` if given, else ``model_path``, else
    the bundled one) on the device, and plan the pass (with ``detail_iterations``, the
    last ones again on a finer grid: tiling.make_detail; None: the model's own where the
    image is fine enough; ``match_colours`` False: the image read as it is even where the
    model would match its colours)."""
    check_tile_size(tile_size)
    ds = open_image(image)
    configure_threads()
    dev = resolve_device(device)
    autocast = inference_autocast(precision, dev)
    net, config = model if model else load_model(model_path, dev)
    if not match_colours:
        config = config.without_colour_match()
    net.to(dev).eval()
    p = prepare_pass(
        ds, net, config, dev, autocast, bands, iterations, input_resolution_m, tile_size
    )
    p.detail = plan_detail(p, detail_iterations, detail_resolution_m)
    p.kept, p.kept_note = drawn_corrections(config, ds, keep_corrections, Path(image).name)
    return p


def prepare_pass(
    ds,
    net: MapRefinerNet,
    config: ModelConfig,
    device: torch.device,
    autocast: torch.dtype | None,
    bands: Sequence[int] | None,
    iterations: int | None,
    input_resolution_m: float | None,
    tile_size: int,
) -> RefinePass:
    """The pass of an open raster and a loaded model: bands checked, the model grid
    and its tiles planned (``iterations`` None: the model's own)."""
    check_tile_size(tile_size)
    info = raster_info(ds)
    band_list = stack_bands(ds, bands, config)
    check_bands(info, band_list)
    if len(band_list) != config.in_channels:
        raise MapRefinerError(
            f"The model needs {config.in_channels} bands; {len(band_list)} were chosen."
        )
    n = check_iterations(config.default_iterations if iterations is None else iterations)
    rx, ry = ground_resolution(info, input_resolution_m)
    grids = make_grids(info.width, info.height, rx, ry, config.ground_resolution_m)
    # A per-image-normalised model gets this raster's statistics here, once per pass, and
    # an image unlike the model's training imagery its colours matched.
    matched = colours_matched(config, ds, band_list, grids)
    fed = for_image(config, ds, band_list, grids, matched)
    p = RefinePass(
        ds, info, net, fed, device, autocast, band_list, n, (rx, ry), grids, int(tile_size)
    )
    notes = [
        matched.note() if matched is not None else "",
        unnamed_bands_note(ds, bands, config.band_names, band_list),
    ]
    p.colour_note = "; ".join(n for n in notes if n)

    def fed_as(c: ModelConfig) -> ModelConfig:
        """A gate parent's configuration as this raster feeds it: with the round's own
        entry and normalisation, its colours matched as measured above (not read again)."""
        same = c.colour_match == config.colour_match and c.normalisation == config.normalisation
        return for_image(c, ds, band_list, grids, matched if same else MEASURE)

    p.gate = gate_chain(net, config, fed_as, device)
    return p


def plan_detail(p: RefinePass, iterations: int | None, resolution_m: float | None) -> Detail | None:
    """The pass's detail grid (tiling.make_detail); ``iterations`` None: the model's own
    where the image is fine enough, none after 0 iterations (the CNN's map)."""
    rx, ry = p.resolution_m
    own = p.config.detail_iterations if p.iterations else 0
    return make_detail(p.grids, rx, ry, p.config.ground_resolution_m, iterations, resolution_m, own)


def drawn_corrections(
    config: ModelConfig, ds, wanted: bool, name: str
) -> tuple[KeptCorrections | None, str]:
    """The model's kept corrections when they belong to this image and are wanted (only
    those under which the image shows what it showed when they were drawn): those of its
    own grid, and those of other images on its pixel lattice that lie whole on it (a crop,
    a mosaic of drawn tiles), its own winning where they overlap (kept.shown_on); and a
    note for the user when some on this image's pixels are left out ("" when none)."""
    if not wanted:
        kept = from_config(config.corrections, config.num_classes)
        if kept is not None:
            log.info(
                "the model's %d drawn corrections are not applied (asked not to)", kept.features
            )
        return None, ""
    shown = shown_on(config.corrections, config.num_classes, ds)
    if shown.entry is None:
        return None, ""
    notes = []
    if shown.gone:
        notes.append(
            f"{shown.gone} of the model's {shown.entry.features} drawn corrections were not "
            f"burned in: {name} lies on the grid of "
            f"{shown.entry.image or 'the image they were drawn on'} but shows something else "
            "under them (another acquisition?); the fine-tuned networks still apply"
        )
    note = _lattice_note(shown.lattice, name)
    if note:
        notes.append(note)
    for said in notes:
        log.info(said)
    if shown.kept is None:
        if not shown.on_grid:
            log.info(
                "the model's %d drawn corrections belong to %s, not to %s: not applied",
                shown.entry.features,
                shown.entry.image or "another image",
                name,
            )
        return None, "; ".join(notes)
    log.info("applying the model's %d drawn corrections to %s", shown.kept.features, name)
    return shown.kept, "; ".join(notes)


def _lattice_note(found: OnLattice, name: str) -> str:
    """What the user is told of the polygons of other images on this image's pixel
    lattice that are not burned in (kept.on_lattice; "" when none)."""
    said = []
    if found.cut:
        said.append(f"{found.cut} cut by its edge (drawn partly outside it)")
    if found.unlike:
        said.append(f"{found.unlike} under which it shows something else")
    if not said:
        return ""
    return (
        f"{found.cut + found.unlike} of the model's drawn corrections on {name}'s pixels "
        f"{'was' if found.cut + found.unlike == 1 else 'were'} not burned in: "
        f"{' and '.join(said)}"
    )
