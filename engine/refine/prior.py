"""A map the user already has as the RNN's starting point, instead of the coarse CNN.

The paper's RNN moves a coarse map onto the image's edges; the coarse map need not
be our CNN's. A prior here is a class raster (any grid, CRS and resolution GDAL
reads; nodata respected) whose values map to the model's classes, a per-class
probability raster (one floating-point band per class, e.g. another tool's soft
output or our own ``--scores``; warped bilinearly, renormalised), or a vector layer
(polygons, and lines burned to a width, as training labels are: an OSM or cadastre
layer) whose class field holds the model's class names (without a field every
feature is the model's class 1, e.g. building; what no feature covers is class 0).
On each tile's model-grid window it is warped (nearest neighbour) or burned
(engine/labels/rasterize.burn_vector) and turned into heat maps the RNN
knows: by default (``calibrate``) each prior class takes the coarse CNN's own mean
heat vector over the pixels the CNN calls that class on this image, measured once on
a fixed lattice of windows (so the map does not depend on the tile size); with a
fixed ``strength``, the prior's class gets that logit and the others 0. Where the
prior has no data the CNN's own heat maps are kept.

With the default model's RNN, on four of the five georeferenced shared scenes, the
calibrated start moved a 2 m-shifted reference up by 9-15 points of building IoU and
kept 87-90 of a right one; fixed logits of 1 or 3 did worse (docs/results_prior.md).
``refine --prior`` uses the bundled snap model, whose RNN was trained from this start
(resources/models/SNAP_MODEL_CARD.md, docs/results_prior_snap.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from ..errors import MapRefinerError
from ..labels.classes import ClassResolver
from ..labels.rasterize import IGNORE, burn_vector, class_field_index
from ..labels.rasters import mask_value_map, sampled_values
from ..labels.unchosen_field import refuse_unchosen
from ..rasters.grid import GridSpec
from ..rasters.read import open_raster
from ..vectors.read import open_layer
from ..vocabulary import numeric_value_map
from .registration import ShiftField

log = logging.getLogger(__name__)

#: Default logit of the prior's class (the others 0).
DEFAULT_STRENGTH = 1.0
#: A pixel of the image keeps the prior's own class unless the refined map gives that
#: class less than this probability there (keep_prior). The RNN works on the model's
#: 0.6 m grid: a right prior's outlines, drawn at the image's resolution, came back
#: rounded to that grid (a right reference's trip through the grid alone costs it
#: about 6 points of building IoU on the shared scenes, the snap model 8-10). Kept
#: where the refined map does not contradict them, they keep their detail; where
#: the image says otherwise (a shifted outline's far side, a missing building), the
#: refined map wins. With the prior registered first (registration.py), 0.1 kept a
#: right reference at 99.1-99.6 building IoU on the four georeferenced shared scenes'
#: right halves (0 kept it at 89.9-91.9; 0.25 at 96.8-98.0) and took references
#: shifted by 2 m from 48-63 to 89-99 (docs/results_prior_snap.md). Chosen on them.
PRIOR_KEEP = 0.1
#: The same for the prior's objects (every class but background) since session 25: a
#: drawn object is the map's own assertion, so the refine trims it only where the
#: refined map all but excludes it, while a missing object (the prior's background)
#: is still added where the map gives the prior's background under PRIOR_KEEP. On the
#: nine shared scenes with an accurate reference, one value for every class (0.1 -> 0.02)
#: kept LoveDA_0's right prior at 99.3 instead of 96.9 (the RNN rounded off a pixel of
#: its outlines) and gained 0.3-0.6 on priors shifted 1-4 m on average, but gave back
#: fewer of the buildings a 20 %-thinned prior lacks (austin_dev 88.1 -> 84.2). The
#: objects alone at 0.02 keep LoveDA_0's 99.3 and most of the shifts' gain (+0.2-0.4)
#: and lose none of the thinned priors' buildings (mean change -2.33 -> -1.80); priors
#: grown by a pixel are trimmed a little less (-2.57 -> -3.07): docs/results_prior.md,
#: "Every scene with an accurate reference: reading". Chosen on those nine scenes.
PRIOR_KEEP_OBJECTS = 0.02
#: More than this share of a class raster prior's sampled values without a class
#: (labels.rasters.sampled_values) is reported (Prior._check_values: an error where they
#: hold every object of the map, else a warning).
UNMAPPED_SHARE = 0.01
#: A class raster prior with more distinct values that are no class than this, over half
#: of it, is an image (or a continuous raster) chosen by mistake: an error.
IMAGE_LIKE_VALUES = 32
#: Ground width (m) a vector prior's lines (roads, tracks) are burned to, as training
#: labels' lines are by default (cli `--line-width`): a two-lane road.
LINE_WIDTH_M = 7.0


@dataclass
class Prior:
    path: Path
    num_classes: int
    value_map: Mapping[object, int] | None = None  # value -> class; None: values are classes
    strength: float = DEFAULT_STRENGTH
    class_heat: np.ndarray | None = None  # (K, K): row k = the heat vector of prior class k
    class_field: str | None = None  # a vector prior's class field (None: every feature is 1)
    class_names: Sequence[str] = field(default_factory=tuple)  # the model's, for a vector prior
    line_width_m: float | None = None  # a vector prior's lines are burned to this ground
    # width in metres (None: LINE_WIDTH_M)
    layer: str | None = None  # a vector prior's layer (None: the file's only one)
    shift: tuple[float, float] = (0.0, 0.0)  # the prior moved by (east, north) in the
    # image's CRS units before use (refine_pass.register_prior)
    field: ShiftField | None = None  # or moved by a shift varying across the image

    def __post_init__(self) -> None:
        if not (0 < self.strength < 100):
            raise MapRefinerError(
                f"The prior strength must be between 0 and 100, not {self.strength}."
            )
        self.is_vector = is_vector(self.path)
        self.is_probability = False
        if self.is_vector:
            self._check_vector()
            return
        if self.class_field is not None or self.layer is not None or self.line_width_m is not None:
            raise MapRefinerError(
                f"The prior {Path(self.path).name} is a raster: its values are the classes "
                "(with a value map); a class field, a layer and a line width are for a "
                "vector prior."
            )
        values = numeric_value_map(
            {str(k): v for k, v in (self.value_map or {}).items()}, "The prior's value map"
        )
        self.ds = open_raster(self.path)
        if not self.ds.GetProjection():
            raise MapRefinerError(
                f"The prior {Path(self.path).name} has no coordinate reference system; "
                "assign one (it must be placed on the image)."
            )
        self.is_probability = is_probability(self.ds, self.num_classes)
        if self.is_probability and values is not None:
            raise MapRefinerError(
                f"The prior {Path(self.path).name} holds probabilities (one band per class, "
                "or one of the object class for a two-class model); a value map is for a "
                "class raster."
            )
        lut = np.full(65536, -1, dtype=np.int32)
        if values is None:
            lut[: self.num_classes] = np.arange(self.num_classes)
        else:
            for value, cls in values.items():
                if not 0 <= int(cls) < self.num_classes:
                    raise MapRefinerError(
                        f"The prior's value {value} maps to class {cls}; the model has "
                        f"{self.num_classes} classes."
                    )
                lut[int(value)] = int(cls)
        self.lut = lut
        if not self.is_probability:
            self._check_values(values is not None)

    def _check_values(self, mapped: bool) -> None:
        """Values of a class raster that are no class (read without a value map: values
        from K up; with one: the values it leaves out) start the RNN from no prior where
        they lie, as nodata does. Where they hold every object of the map (a 0/255 mask
        from another tool read without a value map: nothing but background would be
        left), that is an error that says which values and how to map them; otherwise,
        over UNMAPPED_SHARE of the map, a warning (a 0/1 map's undeclared 255 collar
        starts from no prior, as it always did)."""
        data = sampled_values(self.ds)
        if data.size == 0:
            return
        whole = (data == np.floor(data)) & (data >= 0) & (data < self.lut.size)
        classes = np.full(data.size, -1, dtype=np.int64)
        classes[whole] = self.lut[data[whole].astype(np.int64)]
        unknown = classes < 0
        if unknown.mean() <= UNMAPPED_SHARE:
            return
        seen = np.unique(data[unknown])
        shown = ", ".join(f"{v:g}" for v in seen[:6]) + (", ..." if seen.size > 6 else "")
        name = Path(self.path).name
        share = 100 * unknown.mean()
        if not mapped and seen.size > IMAGE_LIKE_VALUES and unknown.mean() > 0.5:
            raise MapRefinerError(
                f"{name} holds {seen.size} different values that are not this model's "
                f"classes (from {seen[0]:g} to {seen[-1]:g}, on {share:.0f} % of it): it looks "
                "like an image or a continuous raster, not a class map; choose the class map "
                "to start from (or give a value map)."
            )
        if mapped or (classes > 0).any():
            log.warning(
                "%.0f %% of the prior %s holds values that are no class of this model (%s); "
                "the refine starts from the model's own map there",
                share,
                name,
                shown,
            )
            return
        suggested = mask_value_map(data, self.num_classes)
        low, high = np.unique(data)[[0, -1]]
        hint = f" (for a mask of {low:g} and {high:g}: {suggested})" if suggested else ""
        raise MapRefinerError(
            f"{name} holds no pixel of any class but 0, and values that are not this "
            f"model's classes (0 to {self.num_classes - 1}): {shown}; give a value map{hint}."
        )

    def _check_vector(self) -> None:
        """Open the layer once: a missing field, an empty layer or class names that the
        model does not have are errors before any work (a window without features is not)."""
        if not self.class_names:
            raise MapRefinerError("A vector prior needs the model's class names.")
        ds, lyr = open_layer(self.path, self.layer, "--prior-layer")
        name = f"{Path(self.path).name}:{lyr.GetName()}"
        if lyr.GetFeatureCount() == 0:
            raise MapRefinerError(f"The prior layer {name} has no features.")
        index = class_field_index(lyr, self.class_field, name)
        if index >= 0:
            self._check_classes(lyr, index, name)
        else:
            refuse_unchosen(lyr, self.class_names, f"the prior {name}")
        del ds

    def _check_classes(self, lyr, index: int, name: str) -> None:  # noqa: ANN001
        """Every feature's class, resolved as the burn does: a layer none of whose values
        is one of the model's classes would start the RNN from an empty map (an OSM roads
        layer given to a buildings model) and is an error; the features skipped otherwise
        are reported once for the whole layer, not once a window."""
        resolver = ClassResolver(self.class_names, self.value_map, False)
        known = unknown = 0
        defn = lyr.GetLayerDefn()
        others = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount()) if i != index]
        lyr.SetIgnoredFields([*others, "OGR_GEOMETRY", "OGR_STYLE"])  # the class alone
        lyr.ResetReading()
        for feature in lyr:
            value = feature.GetField(index) if feature.IsFieldSet(index) else None
            if resolver.resolve(value) is None:
                unknown += 1
            else:
                known += 1
        lyr.ResetReading()
        classes = ", ".join(self.class_names)
        if known == 0:
            raise MapRefinerError(
                f"No feature of the prior {name} has one of this model's classes ({classes}) in "
                f"field {self.class_field!r} (values such as {resolver.unknown_examples()}). Map "
                "these values to the model's classes (a value map such as 'house:1'), choose "
                "the field that holds the class names, or name no field to read every feature "
                f"as {self.class_names[1]}."
            )
        if unknown:
            log.warning(
                "%d of %d features of the prior %s have no class of this model (values such "
                "as %s) and are left out of it.",
                unknown,
                known + unknown,
                name,
                resolver.unknown_examples(),
            )

    def _bounds(self, grid: GridSpec) -> tuple[float, float, float, float]:
        gt = grid.geotransform
        if gt[2] or gt[4]:
            raise MapRefinerError("A prior needs a north-up image (no rotation).")
        return (gt[0], gt[3] + grid.height * gt[5], gt[0] + grid.width * gt[1], gt[3])

    def _warp(self, source: gdal.Dataset, grid: GridSpec, **options) -> gdal.Dataset:
        try:
            return gdal.Warp(
                "",
                source,
                format="MEM",
                outputBounds=self._bounds(grid),
                width=grid.width,
                height=grid.height,
                dstSRS=grid.projection_wkt or None,
                **options,
            )
        except RuntimeError as exc:
            raise MapRefinerError(
                f"The prior {Path(self.path).name} cannot be placed on the image's grid "
                f"({str(exc).splitlines()[0]}); check its CRS.",
                details=str(exc),
            ) from exc

    def _placed(self, grid: GridSpec) -> GridSpec:
        """Where to read the prior for ``grid``: shifted back by the prior's own shift, so
        that what it holds lands ``shift`` further on the image."""
        sx, sy = self.shift
        if not (sx or sy):
            return grid
        gt = grid.geotransform
        moved = (gt[0] - sx, gt[1], gt[2], gt[3] - sy, gt[4], gt[5])
        return GridSpec(grid.width, grid.height, moved, grid.projection_wkt)

    def probabilities_on(self, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
        """A probability prior on ``grid`` (bilinear): ``(K, h, w)`` float32 summing to 1
        where it has data, and that mask (no data, NaN or an all-zero pixel: none)."""
        if self.field is not None:
            probs, covered = self.field.read(grid, self._probabilities_on)
            return probs, covered
        return self._probabilities_on(grid)

    def _probabilities_on(self, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
        grid = self._placed(grid)
        nodata = self.ds.GetRasterBand(1).GetNoDataValue()
        warped = self._warp(
            self.ds,
            grid,
            resampleAlg="bilinear",
            srcNodata=nodata,
            dstNodata=np.nan,
            outputType=gdal.GDT_Float32,
        )
        if self.ds.RasterCount == 1:  # the object class's probability, background the rest
            p = np.clip(warped.ReadAsArray().reshape(grid.height, grid.width), 0.0, 1.0)
            probs = np.stack([1.0 - p, p])
        else:
            probs = warped.ReadAsArray().reshape(self.num_classes, grid.height, grid.width)
        probs = np.where(np.isfinite(probs), np.clip(probs, 0.0, None), np.nan)
        total = probs.sum(0)
        covered = np.isfinite(total) & (total > 1e-6)
        probs = np.where(covered[None], probs / np.where(covered, total, 1.0)[None], 0.0)
        return probs.astype(np.float32), covered

    def classes_on(self, grid: GridSpec) -> np.ndarray:
        """The prior's class on each pixel of ``grid`` (int32, -1 where it has none)."""
        if self.field is not None:
            return self.field.read(grid, lambda g: (self._classes_on(g),))[0]
        return self._classes_on(grid)

    def _classes_on(self, grid: GridSpec) -> np.ndarray:
        grid = self._placed(grid)
        if self.is_vector:
            burned = burn_vector(
                self.path,
                grid,
                self.class_names,
                self.class_field,
                self.value_map,
                self.layer,
                line_width_m=LINE_WIDTH_M if self.line_width_m is None else self.line_width_m,
                mode="tile",
                allow_empty=True,
            ).labels.astype(np.int32)
            burned[burned == IGNORE] = -1
            return burned
        band = self.ds.GetRasterBand(1)
        nodata = band.GetNoDataValue()
        source = self.ds
        if self.ds.RasterCount > 1:  # the first band holds the classes
            source = gdal.Translate("", self.ds, format="VRT", bandList=[1])
        warped = self._warp(
            source,
            grid,
            resampleAlg="near",
            srcNodata=nodata,
            dstNodata=65535 if nodata is None else nodata,
            outputType=gdal.GDT_UInt16,
        )
        values = warped.GetRasterBand(1).ReadAsArray().astype(np.int64)
        classes = self.lut[np.clip(values, 0, 65535)]
        fill = 65535 if nodata is None else int(nodata)
        classes[values == fill] = -1
        return classes

    def classes_at(self, grid: GridSpec) -> np.ndarray:
        """The prior's class on each pixel of ``grid`` (-1 where it has none); for a
        probability prior, its most probable class."""
        if not self.is_probability:
            return self.classes_on(grid)
        probs, covered = self.probabilities_on(grid)
        classes = probs.argmax(0).astype(np.int32)
        classes[~covered] = -1
        return classes

    def heat(self, grid: GridSpec) -> tuple[np.ndarray, np.ndarray]:
        """Starting heat maps on ``grid``, ``(num_classes, h, w)`` float32, and where the
        prior covers it ``(h, w)`` bool (elsewhere the CNN's own heat maps are used).
        Each prior class k has a heat vector (the CNN's calibrated one, or ``strength``
        on its own logit); a probability prior mixes them by its probabilities, so a
        one-hot probability gives the class raster's start."""
        vectors = (
            self.class_heat
            if self.class_heat is not None
            else self.strength * np.eye(self.num_classes, dtype=np.float32)
        )
        if self.is_probability:
            probs, covered = self.probabilities_on(grid)
            out = np.einsum("kc,khw->chw", vectors.astype(np.float32), probs)
            return out.astype(np.float32), covered
        classes = self.classes_on(grid)
        out = np.zeros((self.num_classes, grid.height, grid.width), dtype=np.float32)
        for k in range(self.num_classes):
            sel = classes == k
            out[:, sel] = vectors[k][:, None]
        return out, classes >= 0


def keep_prior(
    prior: np.ndarray,
    logits: torch.Tensor,
    cls: np.ndarray,
    valid: np.ndarray,
    at_least: float,
    objects: float | None = None,
    background: int | None = None,
) -> int:
    """The prior's class (``prior``, -1 where none) over the class map ``cls`` where the
    refined ``logits`` (``(K, h, w)``, same pixels) give it at least ``at_least``
    probability (``objects`` instead for every class but ``background``, when both are
    given; 0: wherever the prior has a class, the prior as drawn), on valid pixels only;
    returns how many pixels changed."""
    has = (prior >= 0) & valid
    if not has.any():
        return 0
    if at_least <= 0 and (objects is None or objects <= 0):
        sel = has & (cls != prior)
        cls[sel] = prior[sel]
        return int(sel.sum())
    index = torch.from_numpy(np.clip(prior, 0, None).astype(np.int64)).to(logits.device)
    probs = torch.softmax(logits.float(), dim=0).gather(0, index[None])[0].cpu().numpy()
    need: float | np.ndarray = at_least
    if objects is not None and background is not None:
        need = np.where(prior == background, at_least, objects)
    sel = has & (probs >= need) & (cls != prior)
    cls[sel] = prior[sel]
    return int(sel.sum())


def is_probability(ds: gdal.Dataset, num_classes: int) -> bool:
    """A raster of one floating-point band per class: per-class probabilities; or, for a
    two-class model (background and one object class), one floating-point band within
    0-1: the object class's probability (another tool's building probability map)."""
    floats = (gdal.GDT_Float32, gdal.GDT_Float64)
    if ds.RasterCount == 1 and num_classes == 2 and ds.GetRasterBand(1).DataType in floats:
        try:
            low, high = ds.GetRasterBand(1).ComputeRasterMinMax(True)
        except RuntimeError:  # no valid pixel
            return False
        return 0.0 <= low and high <= 1.0 and high > 0.0
    return ds.RasterCount == num_classes and all(
        ds.GetRasterBand(i + 1).DataType in floats for i in range(num_classes)
    )


def is_vector(path: Path) -> bool:
    """Whether GDAL reads ``path`` as a vector layer and not as a raster."""
    try:
        ds = gdal.OpenEx(str(path), gdal.OF_VECTOR | gdal.OF_READONLY)
    except RuntimeError:
        return False
    return ds is not None and ds.GetLayerCount() > 0 and ds.RasterCount == 0


def calibration(heats: list[np.ndarray], valids: list[np.ndarray], strength: float) -> np.ndarray:
    """Row k: the mean CNN heat vector over the pixels the CNN calls class k in
    ``heats`` ((K, h, w) each, valid where ``valids``); a class the CNN never calls
    falls back to ``strength`` on its own logit."""
    k = heats[0].shape[0]
    sums = np.zeros((k, k))
    counts = np.zeros(k)
    for heat, valid in zip(heats, valids):
        calls = heat.argmax(0)
        for c in range(k):
            sel = (calls == c) & valid
            sums[c] += heat[:, sel].sum(1)
            counts[c] += sel.sum()
    out = np.zeros((k, k), dtype=np.float32)
    for c in range(k):
        if counts[c]:
            out[c] = sums[c] / counts[c]
        else:
            out[c, c] = strength
    return out
