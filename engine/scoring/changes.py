"""What changed between two class maps of one image: the pixels that took another class,
as a raster a cartographer can look at and a short account in hectares.

After a correction round the user refines again and gets a new map; whether the round
improved the part of the map they did not draw on cannot be scored without a reference.
What can be shown is where the new map differs from the previous one, so that the user
looks there and keeps the round or undoes it.

The changes raster lies on the newer map's grid (the older one is read onto it, nearest
neighbour): ``c + 1`` where the pixel became class ``c``, 0 (its nodata value, so that
every tool draws it transparent) where the class is the same or either map has no data.
Its colour table and category names ("became <class>", in the ``.aux.xml`` sidecar as
for the class maps) say what each value means.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union

import numpy as np
from osgeo import gdal

from ..errors import MapRefinerError
from ..labels.classes import IGNORE
from ..labels.kept import KeptCorrections
from ..labels.rasters import read_block, to_labels
from ..progress import CancelFn, ProgressFn, make_reporter
from ..rasters.files import (
    adopt_sidecar,
    atomic_path,
    check_geotiff_name,
    check_output_path,
    sidecar,
)
from ..rasters.grid import GridSpec, grid_of, metres_per_unit, window
from ..rasters.read import open_raster
from ..rasters.write import CLASS_NODATA, create_geotiff
from ..refine.memory import bounded_memory
from .scores import confusion_matrix

PathLike = Union[str, Path]
BLOCK_PIXELS = 1 << 20  # pixels of each map read at once (a few MB)
UNCHANGED = 0  # also the nodata value: same class, or no data in either map
#: The changes raster's colours, "became <class>" by class: not the class's own colour,
#: which would not show on top of the class map it is compared on (a new building red on
#: a red building); a pale class (background, mean channel above PALE) in CHANGE_PALE,
#: the others in CHANGE_COLOURS in class order.
PALE = 200
CHANGE_PALE = (30, 120, 230)
CHANGE_COLOURS = ((255, 200, 0), (0, 225, 225), (240, 0, 240), (140, 255, 0), (255, 120, 0))
SQUARE_METRES_PER_HECTARE = 10_000.0

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class MapChanges:
    """How the newer map differs from the older one."""

    class_names: list[str]
    transitions: np.ndarray  # (K, K) pixels: rows = class before, columns = class after
    pixel_area_m2: float | None  # None: the grid has no CRS (areas in pixels then)
    out: Path | None = None  # the changes raster, when one was written
    colours: tuple[Colour, ...] = ()  # the classes' own colours (the maps' legend)
    outside: np.ndarray | None = None  # the same counts away from the drawn polygons
    # (map_changes' ``drawn``); None: none given, or drawn on another image

    @property
    def compared(self) -> int:
        """Pixels with data in both maps."""
        return int(self.transitions.sum())

    @property
    def changed(self) -> int:
        return self.compared - int(np.trace(self.transitions))

    @property
    def changed_share(self) -> float:
        return self.changed / self.compared if self.compared else 0.0

    def became(self, k: int) -> int:
        """Pixels of another class before that are class ``k`` now."""
        return int(self.transitions[:, k].sum() - self.transitions[k, k])

    def left(self, k: int) -> int:
        """Pixels of class ``k`` before that are another class now."""
        return int(self.transitions[k, :].sum() - self.transitions[k, k])

    def amount(self, pixels: int) -> str:
        """Pixels as an area: hectares (square metres under one) or, without a CRS, pixels."""
        if self.pixel_area_m2 is None:
            return f"{pixels} px"
        m2 = pixels * self.pixel_area_m2
        if m2 < SQUARE_METRES_PER_HECTARE:
            return f"{m2:.0f} m²"
        return f"{m2 / SQUARE_METRES_PER_HECTARE:.2f} ha"

    def away_from_drawn(self) -> MapChanges | None:
        """The changes outside the drawn polygons alone; None when they are not known."""
        if self.outside is None:
            return None
        return replace(self, transitions=self.outside, outside=None)

    def summary(self) -> str:
        """One line: the share changed and what each class gained and lost, e.g.
        ``2.1 % of the map changed: building +0.84 ha / -0.12 ha``; with drawn polygons,
        that outside them first (what a correction round did where no one drew)."""
        away = self.away_from_drawn()
        if away is None:
            return self._account()
        return (
            f"outside the drawn polygons, {away._account()} "
            f"({100 * self.changed_share:.1f} % with them)"
        )

    def _account(self) -> str:
        if self.compared == 0:
            return "the two maps share no pixel with data"
        if self.changed == 0:
            return "no pixel changed class"
        parts = [
            f"{name} +{self.amount(self.became(k))} / -{self.amount(self.left(k))}"
            for k, name in enumerate(self.class_names)
            if self.became(k) or self.left(k)
        ]
        # with two classes one gains what the other loses: name the first that is not
        # background (what a map is made for) only
        if len(parts) == 2 and len(self.class_names) == 2:
            parts = [p for p in parts if not p.startswith("background ")][:1] or parts[:1]
        return f"{100 * self.changed_share:.1f} % of the map changed: " + ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        return {
            "class_names": list(self.class_names),
            "transitions": self.transitions.tolist(),
            "compared_pixels": self.compared,
            "changed_pixels": self.changed,
            "changed_share": self.changed_share,
            "pixel_area_m2": self.pixel_area_m2,
            "became": {n: self.became(k) for k, n in enumerate(self.class_names)},
            "left": {n: self.left(k) for k, n in enumerate(self.class_names)},
            "changes": str(self.out) if self.out is not None else None,
            "outside_drawn": (away := self.away_from_drawn()) and away.to_dict(),
        }


def drawn_by(model: PathLike | None, on: PathLike | None = None) -> KeptCorrections | None:
    """The polygons a fine-tuned model keeps (drawn by the user, burned into its maps of
    that image; checked against the model's own classes); None for a model without any.
    ``on``: a map of one of the images it keeps polygons of (a model fine-tuned image
    after image keeps each one's): those of that map's grid."""
    if model is None:
        return None
    from ..labels.kept import from_config
    from ..modelfile.header import read_model_config  # the file's JSON header only

    config = read_model_config(model)
    grid = grid_of(open_raster(on)) if on is not None else None
    return from_config(config.corrections, config.num_classes, grid)


def class_legend(ds: gdal.Dataset) -> tuple[list[str], list[Colour]] | None:
    """A class map's class names and colours, as the engine writes them (band 1's
    category names and colour table up to the last named class); None when it names no
    class."""
    band = ds.GetRasterBand(1)
    # the colour table first: GDAL 3.6's GeoTIFF driver reads the .aux.xml sidecar, where
    # the category names are, only once something else has asked for it
    table = band.GetRasterColorTable()
    names = list(band.GetCategoryNames() or [])
    while names and not names[-1]:
        names.pop()
    if CLASS_NODATA < len(names) and names[CLASS_NODATA] == "nodata":
        names = names[:CLASS_NODATA]
        while names and not names[-1]:
            names.pop()
    if not names:
        return None
    if table is None:  # named, not coloured: grey (the changes use their own colours)
        return names, [(128, 128, 128)] * len(names)
    colours = [tuple(table.GetColorEntry(i)[:3]) for i in range(len(names))]
    return names, colours


def change_legend(
    names: Sequence[str], colours: Sequence[Colour]
) -> tuple[list[str], list[tuple[int, int, int, int]]]:
    """The changes raster's category names and RGBA colours, by value: transparent
    "unchanged" at 0, "became <class>" at class + 1 (see CHANGE_COLOURS)."""
    cats = ["unchanged"] + [f"became {n}" for n in names]
    rgba: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)]
    bright = 0
    for c in colours:
        if sum(c) / 3 > PALE:
            rgba.append((*CHANGE_PALE, 255))
        else:
            rgba.append((*CHANGE_COLOURS[bright % len(CHANGE_COLOURS)], 255))
            bright += 1
    return cats, rgba


def map_changes(
    before: PathLike,
    after: PathLike,
    out: PathLike | None = None,
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    is_cancelled: CancelFn | None = None,
    drawn: KeptCorrections | None = None,
) -> MapChanges:
    """Compare class map ``after`` with ``before`` (read onto ``after``'s grid), and with
    ``out`` write the changes raster there (atomically; an existing file only with
    ``overwrite``; never one of the two maps). Class names come from ``class_names`` or
    from ``after``'s own categories; two maps whose categories differ are refused. With
    ``drawn`` (a fine-tuned model's kept polygons, drawn on ``after``'s grid) the changes
    away from them are counted apart (MapChanges.outside) and the raster holds only those
    (the polygons show in the user's own correction layer)."""
    before, after = Path(before), Path(after)
    report = make_reporter(progress, is_cancelled)
    after_ds, before_ds = open_raster(after), open_raster(before)
    names, colours = _classes(before_ds, after_ds, class_names)
    grid = grid_of(after_ds)
    if out is not None:
        check_geotiff_name(out, "changes raster")
        out = check_output_path(out, (before, after), overwrite)
    k = len(names)
    transitions = np.zeros((k, k), dtype=np.int64)
    on_grid = drawn is not None and drawn.matches(grid)
    outside = np.zeros((k, k), dtype=np.int64) if on_grid else None
    box = drawn.pixel_box() if drawn is not None and on_grid else None
    rows = max(1, BLOCK_PIXELS // grid.width)
    with bounded_memory():
        with _changes_file(before, after, out, grid, names, colours, overwrite) as file:
            for y0 in range(0, grid.height, rows):
                cm, changes, away = _block(before_ds, after_ds, grid, y0, rows, k, drawn, box)
                transitions += cm
                if outside is not None:
                    outside += away
                if file is not None:
                    file.write(changes, y0)
                report.check()
                report.report((y0 + rows) / grid.height)
            if transitions.sum() == 0:
                raise MapRefinerError(
                    f"{before.name} and {after.name} share no pixel with data; compare two "
                    "maps of the same image."
                )
    return MapChanges(names, transitions, pixel_area(grid), out, tuple(colours), outside)


class _ChangesFile:
    """The changes raster being written under a temporary name."""

    def __init__(self, tmp: Path, out: Path, grid: GridSpec, legend: tuple) -> None:
        self.ds: gdal.Dataset | None = create_geotiff(
            tmp,
            grid.width,
            grid.height,
            1,
            gdal.GDT_Byte,
            grid.geotransform,
            grid.projection_wkt,
            out,
        )
        _style(self.ds.GetRasterBand(1), *legend)

    def describe(self, text: str) -> None:
        assert self.ds is not None
        self.ds.GetRasterBand(1).SetDescription(text)  # what QGIS's legend says of the band

    def write(self, changes: np.ndarray, y0: int) -> None:
        assert self.ds is not None
        self.ds.GetRasterBand(1).WriteArray(changes, 0, y0)

    def close(self) -> None:
        """Every byte, and the sidecar with the category names, on disk (the only
        reference to the dataset goes: GDAL 3.6 closes a dataset when it is freed)."""
        self.ds = None


@contextlib.contextmanager
def _changes_file(
    before: Path,
    after: Path,
    out: Path | None,
    grid: GridSpec,
    names: Sequence[str],
    colours: Sequence[Colour],
    overwrite: bool,
) -> Iterator[_ChangesFile | None]:
    """The changes raster to write into (None without ``out``), placed at ``out`` with
    its sidecar when the block ends, and nothing left behind when it fails."""
    if out is None:
        yield None
        return
    tmp: Path | None = None
    file: _ChangesFile | None = None
    try:
        with atomic_path(out, overwrite) as tmp:
            file = _ChangesFile(tmp, out, grid, (names, colours))
            file.describe(f"{after.name} against {before.name}")
            yield file
            file.close()
        adopt_sidecar(tmp, out)  # the category names
    finally:
        if file is not None:
            file.close()  # before its sidecar is removed: closing writes it
        if tmp is not None:
            with contextlib.suppress(OSError):
                sidecar(tmp).unlink()


def _block(
    before_ds: gdal.Dataset,
    after_ds: gdal.Dataset,
    grid: GridSpec,
    y0: int,
    rows: int,
    k: int,
    drawn: KeptCorrections | None = None,
    box: tuple[int, int, int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The block's transitions, its changes raster (with ``drawn`` polygons, only the
    changes away from them) and its transitions away from them (burned only where their
    ``box`` of pixels meets the block)."""
    height = min(rows, grid.height - y0)
    block = (0, y0, grid.width, height)
    old = to_labels(*read_block(before_ds, grid, block), None, _name(before_ds))
    new = to_labels(*read_block(after_ds, grid, block), None, _name(after_ds))
    cm = confusion_matrix(new, old, k)  # rows: the reference argument, here the older map
    changes = np.where(new == old, UNCHANGED, new.astype(np.int64) + 1).astype(np.uint8)
    changes[(old == IGNORE) | (new == IGNORE)] = UNCHANGED
    away = cm
    if drawn is not None and box is not None and box[1] < y0 + height and y0 < box[3]:
        under = drawn.labels_on(window(grid, 0, y0, grid.width, height)) != IGNORE
        away = confusion_matrix(np.where(under, IGNORE, new), old, k)
        changes[under] = UNCHANGED  # what the user drew shows in their own layer
    return cm, changes, away


def _classes(
    before_ds: gdal.Dataset, after_ds: gdal.Dataset, class_names: Sequence[str] | None
) -> tuple[list[str], list[Colour]]:
    legend_after, legend_before = class_legend(after_ds), class_legend(before_ds)
    if (
        legend_after is not None
        and legend_before is not None
        and legend_after[0] != legend_before[0]
    ):
        raise MapRefinerError(
            f"{_name(before_ds)} has the classes {', '.join(legend_before[0])} and "
            f"{_name(after_ds)} {', '.join(legend_after[0])}; compare maps of one model's "
            "classes."
        )
    legend = legend_after or legend_before
    if class_names is not None:
        names = list(class_names)
        colours = list(legend[1][: len(names)]) if legend is not None else []
    elif legend is not None:
        names, colours = legend
    else:
        raise MapRefinerError(
            f"{_name(after_ds)} does not name its classes; give the class names "
            "(--class-names background,building)."
        )
    grey = (128, 128, 128)
    colours = list(colours) + [grey] * (len(names) - len(colours))
    if not 0 < len(names) < CLASS_NODATA - 1:
        raise MapRefinerError(f"A class map has 1 to {CLASS_NODATA - 2} classes, not {len(names)}.")
    return names, colours


def _style(band: gdal.Band, names: Sequence[str], colours: Sequence[Colour]) -> None:
    cats, rgba = change_legend(names, colours)
    table = gdal.ColorTable()
    for value, colour in enumerate(rgba):
        table.SetColorEntry(value, colour)
    band.SetRasterColorTable(table)
    band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
    band.SetCategoryNames(cats)
    band.SetNoDataValue(UNCHANGED)


def pixel_area(grid: GridSpec) -> float | None:
    if grid.srs() is None:
        return None
    try:
        mx, my = metres_per_unit(grid)
    except MapRefinerError:
        return None
    gt = grid.geotransform
    area = abs(gt[1] * gt[5] - gt[2] * gt[4]) * mx * my
    return area if math.isfinite(area) and area > 0 else None


def _name(ds: gdal.Dataset) -> str:
    return Path(ds.GetDescription()).name
