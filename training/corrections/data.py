"""The corrections a fine-tune learns from, on the model's grid.

The drawn polygons are burned onto the image (with the polygons of earlier rounds
on the same image, which the base model keeps), carried to the model grid, and
numbered by the feature they came from, so that whole polygons can be held out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ...engine.errors import MapRefinerError
from ...engine.labels.kept import KeptCorrections, left_out, merged, shown_on
from ...engine.labels.rasterize import vector_shapes
from ...engine.labels.rasters import cells_of_pixels, downsample_window, pixels_of_cells
from ...engine.modelfile.config import ModelConfig
from ...engine.rasters.grid import grid_of, scaled, window
from ...engine.rasters.read import check_bands, ground_resolution, open_image, raster_info
from ...engine.refine.predict import stack_bands
from ..data import grown_box, model_grids, read_model_window
from ..tile import IGNORE, LabelSource, TrainingTile
from .interior import interior
from .overdrawn import ImageReader, overdrawn
from .snap_outlines import snapped_kept

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
#: Images whose model grid is at most this many pixels are read whole (context for
#: the anchors and the held-out check); larger ones only around the corrections.
WHOLE_IMAGE_PIXELS = 4_000_000
#: Model pixels of context read around the corrections of a large image.
MARGIN = 192
#: The most model pixels a fine-tune holds around the corrections of a large image
#: (4000 x 4000). The fit keeps the window's image, its frozen CNN features, the base
#: model's map and the anchors (which cover the whole window) for every pixel, so its
#: memory grows with the window: corrections spread wider than this over a large image
#: are refused with what to do, before the image is read. Windows within it are
#: exactly what they were before the bound (whole images up to WHOLE_IMAGE_PIXELS,
#: else the corrections' box and MARGIN), so the same polygons give the same model.
MAX_WINDOW_PIXELS = 16_000_000
#: Model pixels left empty between the pieces of a composite window (see
#: load_corrections): past the frozen CNN layers' reach (about 60 px) and the RNN's, so
#: one piece's image never shows through into another's scores.
PIECE_GAP = 96


@dataclass(frozen=True)
class Piece:
    """One model-grid window of the image (x0, y0, x1, y1) and where it sits on the
    fit's canvas (its top-left corner, x and y)."""

    window: tuple[int, int, int, int]
    at: tuple[int, int] = (0, 0)


@dataclass
class Corrections:
    """The image and the drawn labels on a model-grid window (or on a canvas of several
    windows, ``pieces``), and which polygon each labelled pixel belongs to."""

    tile: TrainingTile
    features: torch.Tensor  # (h, w) int64: drawn feature number, -1 where none
    kept: KeptCorrections  # every polygon so far, on the image grid
    pieces: list[Piece] = field(default_factory=list)  # more than one: a composite; the
    # canvas between them is empty (tile.valid False, no label, a flat mean image)
    overdrawn: torch.Tensor | None = None  # (h, w) bool: cells only the strip an outline
    # overdrew past the image's edge labels (outline_edges; also in tile.unweighted)
    taught: KeptCorrections | None = None  # the polygons the labels come from when they
    # are not ``kept`` as drawn (snap_outlines: moved onto the image's edges)
    snapped: int = 0  # how many of them moved
    snap_tried: int = 0  # of how many object outlines (background polygons stay as drawn)
    left_out: int = 0  # earlier rounds' polygons the layer, which continues theirs, no
    # longer holds as they were (deleted, reshaped or reclassed there): gone from the model

    @property
    def labelled_by(self) -> KeptCorrections:
        """The polygons the labels were burned from: ``taught`` if any, else ``kept``."""
        return self.kept if self.taught is None else self.taught

    def boxes(self, features: Sequence[int]) -> list[tuple[int, int, int, int]]:
        """Each feature's bounding box on the window, ``(y0, y1, x0, x1)``."""
        out = []
        for f in features:
            ys, xs = torch.nonzero(self.features == f, as_tuple=True)
            if len(ys):
                out.append((int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1))
        return out

    def feature_classes(self) -> dict[int, int]:
        """Feature number -> class, for the features that reach the model grid."""
        lab, ids = self.tile.labels, self.features
        out: dict[int, int] = {}
        for f in torch.unique(ids[(ids >= 0) & (lab != IGNORE)]).tolist():
            values = lab[(ids == f) & (lab != IGNORE)]
            out[int(f)] = int(torch.mode(values.long()).values)
        return out


def load_corrections(
    image_path: PathLike,
    source: LabelSource,
    config: ModelConfig,
    bands: Sequence[int] | None = None,
    input_resolution_m: float | None = None,
    allow_large: bool = False,
    edge_band_m: float = 0.0,
    outline_edges: bool = False,
    outline_side_m: float = 0.0,
    snap_outlines: bool = False,
) -> Corrections:
    """Read the correction layer (sparse: only drawn pixels count) and the image
    (``allow_large``: around corrections spread past MAX_WINDOW_PIXELS too;
    ``edge_band_m``: the tile's ``unweighted`` marks the cells only the band of that
    width inside each outline labels, interior.py; ``outline_edges``: and those only
    the part an outline overdrew past the image's edge labels, overdrawn.py, judged
    stretch by stretch with ``outline_side_m``; ``snap_outlines``: the labels come from
    the object polygons moved onto the image's edges, snap_outlines.snapped_kept, while
    ``kept``, which a refine burns, holds them as drawn)."""
    if not source.is_vector or source.mode != "sparse":
        raise MapRefinerError(
            "A fine-tune learns from correction polygons: give a vector layer in sparse mode "
            "(only the pixels inside the polygons count). To train on a fully labelled tile or "
            "a label raster, use train-rnn."
        )
    ds = open_image(image_path)
    info = raster_info(ds)
    bands = stack_bands(ds, bands, config)
    check_bands(info, bands)
    grid = grid_of(ds)
    pixel_m = float(np.mean(ground_resolution(info, input_resolution_m)))
    band_px = round(edge_band_m / pixel_m) if edge_band_m > 0 else 0
    edges = (
        _ImageEdges(ds, bands, pixel_m, config.background, outline_side_m)
        if outline_edges
        else None
    )
    vm = {str(k): int(v) for k, v in source.value_map.items()} if source.value_map else None
    drawn = vector_shapes(
        source.path,
        grid,
        config.class_names,
        class_field=source.class_field,
        value_map=vm,
        layer=source.layer,
        line_width_m=source.line_width_m,
        every_class=source.class_field is not None,
    )
    new = KeptCorrections(grid, drawn.shapes, Path(image_path).name)
    # the base model's polygons this image shows, as a refine of it burns them: those of
    # its grid, over those of other images on its pixels (a crop, a mosaic of its tiles)
    shown = shown_on(config.corrections, config.num_classes, ds)
    if shown.gone and shown.entry is not None:
        log.warning(
            "%d of the base model's earlier corrections on this grid are not learnt again: "
            "this image does not show under them what %s showed when they were drawn",
            shown.gone,
            shown.entry.image or "the image they were drawn on",
        )
    found = shown.lattice.kept
    if found is not None:
        log.info("%d corrections of %s lie on this image's pixels", found.features, found.image)
    old = shown.kept
    dropped = left_out(old, new)
    if dropped:  # the round's message says so too
        log.info(
            "%d of the base model's earlier corrections of this image are no longer in the "
            "layer as they were (deleted, reshaped or given another class there): they go",
            dropped,
        )
    kept = merged(old, new).with_looks(ds, bands)
    earlier = len(kept.shapes) > len(new.shapes)
    if earlier:
        log.info(
            "the base model's %d earlier corrections of this image are learnt again",
            kept.features - new.features,
        )
    taught, snapped, tried = kept, 0, 0  # the polygons the labels are burned from
    if snap_outlines:
        keep = () if config.background is None else (config.background,)
        taught, snapped, tried = snapped_kept(kept, ds, bands, pixel_m, keep)
        log.info("%d of %d object outlines learnt moved onto the image's edges", snapped, tried)
    grids = model_grids(ds, config, input_resolution_m)
    size = (grids.model_width, grids.model_height)
    boxes = _drawn_boxes(taught, size)
    if not boxes:
        raise MapRefinerError(
            "The corrections are too small to show on the model's grid "
            f"({config.ground_resolution_m:g} m pixels); draw polygons a few metres across."
        )
    pieces = [Piece((0, 0, *size))]
    if size[0] * size[1] > WHOLE_IMAGE_PIXELS:
        win = grown_box(_union(boxes), MARGIN, size)
        pieces = [Piece(win)]
        if _area(win) > MAX_WINDOW_PIXELS and not allow_large:
            # far-apart corrections: a window around each group of them, side by side
            pieces = composite([grown_box(b, MARGIN, size) for b in boxes])
            w, h = _canvas_size(pieces)
            if w * h > MAX_WINDOW_PIXELS:
                _check_window(
                    win, config.ground_resolution_m, Path(image_path).name, earlier, w * h
                )
    model_grid = scaled(grid, *size)
    parts, bands_of, overs = [], [], []
    for piece in pieces:
        x0, y0, x1, y1 = piece.window
        labels, band, over = _cell_labels(taught, size, piece.window, band_px, edges)
        parts.append(
            (
                read_model_window(ds, bands, grids, config, piece.window),
                labels,
                taught.features_on(window(model_grid, x0, y0, x1 - x0, y1 - y0)),
            )
        )
        if band is not None:
            bands_of.append(band)
        if over is not None:
            overs.append(over)
    if len(pieces) == 1:
        image, labels, features = parts[0]
        tile = TrainingTile(image, torch.from_numpy(labels), pieces[0].window)
    else:
        image, labels, features, valid = _on_canvas(pieces, parts)
        tile = TrainingTile(image, torch.from_numpy(labels), _union([p.window for p in pieces]))
        tile.valid = torch.from_numpy(valid)
    if bands_of:
        tile.unweighted = torch.from_numpy(_placed(pieces, bands_of, labels.shape))
    log.info(
        "corrections on %s: %d polygons, %d model pixels drawn, model window%s %s",
        Path(image_path).name,
        kept.features,
        tile.labelled_pixels,
        "s" if len(pieces) > 1 else "",
        ", ".join(str(p.window) for p in pieces),
    )
    features = np.ascontiguousarray(features.astype(np.int64))
    over_cells = torch.from_numpy(_placed(pieces, overs, labels.shape)) if overs else None
    return Corrections(
        tile,
        torch.from_numpy(features),
        kept,
        pieces,
        over_cells,
        taught if snap_outlines else None,
        snapped,
        tried,
        dropped,
    )


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _union(boxes: Sequence[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    b = np.array(boxes)
    return int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())


def _overlap(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _canvas_size(pieces: Sequence[Piece]) -> tuple[int, int]:
    """The canvas's width and height."""
    w = max(p.at[0] + p.window[2] - p.window[0] for p in pieces)
    h = max(p.at[1] + p.window[3] - p.window[1] for p in pieces)
    return w, h


def composite(windows: Sequence[tuple[int, int, int, int]]) -> list[Piece]:
    """Windows (x0, y0, x1, y1) that overlap merged into their box, again until none
    does, then laid out on a canvas in rows (tallest first, a row about as wide as the
    canvas is tall), PIECE_GAP apart, each corner on the stride-4 lattice. The fit then
    holds only the pieces and their gaps, not the whole area between far-apart
    corrections."""
    boxes = [tuple(int(v) for v in w) for w in windows]
    while pair := next(
        ((i, j) for i, j in combinations(range(len(boxes)), 2) if _overlap(boxes[i], boxes[j])),
        None,
    ):
        i, j = pair
        boxes[i] = _union([boxes[i], boxes[j]])
        del boxes[j]
    order = sorted(boxes, key=lambda b: (-(b[3] - b[1]), b[1], b[0]))
    total = sum(_area(b) + PIECE_GAP * (b[2] - b[0] + b[3] - b[1]) for b in order)
    row_width = max(max(b[2] - b[0] for b in order), int(total**0.5))
    pieces, x, y, row_h = [], 0, 0, 0
    for b in order:
        w, h = b[2] - b[0], b[3] - b[1]
        if x > 0 and x + w > row_width:  # the next row
            x, y, row_h = 0, y + row_h + PIECE_GAP, 0
        pieces.append(Piece(b, (x, y)))  # type: ignore[arg-type]
        x = -(-(x + w + PIECE_GAP) // 4) * 4
        row_h = max(row_h, -(-h // 4) * 4)
    return pieces


def _placed(
    pieces: Sequence[Piece], masks: Sequence[np.ndarray], shape: tuple[int, ...]
) -> np.ndarray:
    """Each piece's mask where the piece sits on the canvas (of ``shape``); one piece's
    mask is the window's own."""
    if len(pieces) == 1:
        return masks[0]
    out = np.zeros(shape, dtype=bool)
    for piece, m in zip(pieces, masks):
        (ax, ay), (ph, pw) = piece.at, m.shape
        out[ay : ay + ph, ax : ax + pw] = m
    return out


def _on_canvas(
    pieces: Sequence[Piece], parts: Sequence[tuple[torch.Tensor, np.ndarray, np.ndarray]]
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]:
    """The pieces' images, labels and feature numbers on one canvas, and where the
    canvas holds the image (``valid``); the gaps are the normalised image's mean (0),
    unlabelled, no feature."""
    w, h = _canvas_size(pieces)
    image = torch.zeros((parts[0][0].shape[0], h, w), dtype=torch.float32)
    labels = np.full((h, w), IGNORE, dtype=np.uint8)
    features = np.full((h, w), -1, dtype=np.int64)
    valid = np.zeros((h, w), dtype=bool)
    for piece, (img, lab, feat) in zip(pieces, parts):
        (ax, ay), ph, pw = piece.at, img.shape[1], img.shape[2]
        image[:, ay : ay + ph, ax : ax + pw] = img
        labels[ay : ay + ph, ax : ax + pw] = lab
        features[ay : ay + ph, ax : ax + pw] = feat
        valid[ay : ay + ph, ax : ax + pw] = True
    return image, labels, features, valid


def _labels_on_cells(
    kept: KeptCorrections, size: tuple[int, int], cells: tuple[int, int, int, int]
) -> np.ndarray:
    """The drawn classes on the model-grid ``cells`` (x0, y0, x1, y1) of a model grid of
    ``size``: only the image pixels under them are burned."""
    return _cell_labels(kept, size, cells)[0]


@dataclass(frozen=True)
class _ImageEdges:
    """The image's own pixels, for the edges an overdrawn outline is checked against."""

    ds: object  # gdal.Dataset
    bands: Sequence[int]
    pixel_m: float
    ground: int | None  # the background class: its polygons outline no object
    side_m: float = 0.0  # overdrawn's stretch rule (min_side_m; 0: whole polygons)

    def reader(self, px0: int, py0: int) -> ImageReader:
        """Reads rows y0:y1, columns x0:x1 of a pixel window whose corner is (px0, py0)."""

        def read(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
            return np.stack(
                [
                    self.ds.GetRasterBand(b).ReadAsArray(  # type: ignore[attr-defined]
                        int(px0 + x0), int(py0 + y0), int(x1 - x0), int(y1 - y0)
                    )
                    for b in self.bands
                ]
            ).astype(np.float32)

        return read


def _cell_labels(
    kept: KeptCorrections,
    size: tuple[int, int],
    cells: tuple[int, int, int, int],
    band_px: int = 0,
    edges: _ImageEdges | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """:func:`_labels_on_cells`; with ``band_px`` or ``edges`` the cells only the band of
    that many image pixels inside an outline (interior.interior) or the part of an outline
    overdrawn past the image's edge (overdrawn.overdrawn) labels (None with neither); and
    with ``edges`` the cells only that overdrawn part labels (else None); from one burn of
    the polygons."""
    g = kept.grid
    x0, y0, x1, y1 = cells
    px0, px1 = pixels_of_cells(g.width, size[0], x0, x1)
    py0, py1 = pixels_of_cells(g.height, size[1], y0, y1)
    pixels = window(g, px0, py0, px1 - px0, py1 - py0)
    on_image = kept.labels_on(pixels)
    labels = downsample_window(on_image, (g.width, g.height), size, cells)
    if band_px <= 0 and edges is None:
        return labels, None, None
    features = kept.features_on(pixels)
    inner = interior(on_image, band_px, features)
    over_cells = None
    if edges is not None:
        over = overdrawn(
            on_image,
            features,
            edges.reader(px0, py0),
            edges.pixel_m,
            ground=edges.ground,
            min_side_m=edges.side_m,
        )
        kept_part = on_image.copy()
        kept_part[over] = IGNORE
        cut = downsample_window(kept_part, (g.width, g.height), size, cells)
        over_cells = (labels != IGNORE) & (cut == IGNORE)
        if band_px <= 0:
            return labels, over_cells, over_cells
        inner[over] = IGNORE  # interior() made a copy: band_px > 0
    inner_cells = downsample_window(inner, (g.width, g.height), size, cells)
    return labels, (labels != IGNORE) & (inner_cells == IGNORE), over_cells


def _drawn_boxes(kept: KeptCorrections, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The box ``(x0, y0, x1, y1)`` of the model-grid cells each polygon labels (none for
    a polygon too small to label a cell). Each polygon is burned alone, around itself: a
    cell is labelled when any polygon labels a pixel in it, so the union of their boxes
    is the box of all of them burned together, and spread polygons never burn the image
    between them."""
    g = kept.grid
    boxes = []
    for shape in kept.shapes:
        box = kept.pixel_box([shape])
        if box is None:
            continue
        cx0, cx1 = cells_of_pixels(g.width, size[0], box[0], box[2])
        cy0, cy1 = cells_of_pixels(g.height, size[1], box[1], box[3])
        if cx0 == cx1 or cy0 == cy1:
            continue
        alone = KeptCorrections(g, [shape])
        ys, xs = np.nonzero(_labels_on_cells(alone, size, (cx0, cy0, cx1, cy1)) != IGNORE)
        if len(xs):
            boxes.append(
                (
                    int(cx0 + xs.min()),
                    int(cy0 + ys.min()),
                    int(cx0 + xs.max() + 1),
                    int(cy0 + ys.max() + 1),
                )
            )
    return boxes


def _check_window(
    win: tuple[int, int, int, int],
    resolution_m: float,
    image: str,
    earlier: bool,
    pieces_area: int,
) -> None:
    """Refuse corrections whose windows, even apart, pass MAX_WINDOW_PIXELS, before the
    image is read."""
    w, h = win[2] - win[0], win[3] - win[1]
    if w * h <= MAX_WINDOW_PIXELS:
        return
    side = int(MAX_WINDOW_PIXELS**0.5)
    also = " (with the earlier rounds' on this image)" if earlier else ""
    raise MapRefinerError(
        f"The corrections{also} on {image} spread over {w} x {h} pixels of the model's grid "
        f"({w * resolution_m / 1000:.1f} x {h * resolution_m / 1000:.1f} km), and the "
        f"windows around each group of them still cover {pieces_area / 1e6:.1f} million; "
        f"a fine-tune holds them in memory and takes at most {side} x {side} "
        f"({side * resolution_m / 1000:.1f} km across). Draw this round's corrections "
        "closer together, fine-tune on a crop of the image around them, or add "
        "--allow-large if this machine has the memory."
    )
