"""The "Export polygons" action: a class map to polygons (GeoPackage or shapefile),
styled by class."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qgis.core import (
    Qgis,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)

from ...engine.errors import MapRefinerError
from ...engine.progress import CancelFn, ProgressFn
from ..layers import class_renderer
from ..paths import output_beside
from ..sources import layer_file, project_dir

if TYPE_CHECKING:
    from ...engine.vectors.vectorize import VectorizeResult

Colour = tuple[int, int, int]


@dataclass
class ClassMap:
    """A class-map file with the names and colours of its classes (index order)."""

    path: Path
    names: list[str]
    colours: list[Colour]
    scores: Path | None = None  # the refine's probabilities: polygons get mean_prob


#: The export's default smallest polygon, in model pixels a side: the smallest object
#: the model's grid resolves spans two of its pixels each way (one pixel alone is a
#: speck, and a map resampled back to a finer image grid adds slivers under one model
#: pixel). With the bundled model's 0.6 m grid: 1.44 m².
MIN_AREA_MODEL_PIXELS = 2
#: The smallest polygon where no model is known (a job built without the dialog, or the
#: dialog's model unusable): about 2 x 2 pixels of a 0.6-0.7 m model.
DEFAULT_MIN_AREA_M2 = 2.0
#: Classes left out of an export unless asked for: one huge polygon of everything else.
BACKGROUND = "background"
#: The class whose outlines "Regularise building outlines" squares, as the CLI's bare
#: ``vectorize --regularize`` does.
REGULARIZED_CLASS = "building"
#: The export's formats: the file extension of each, by the name the dialog shows.
FORMATS = {"GeoPackage": ".gpkg", "Shapefile": ".shp"}


@dataclass
class VectorizeJob:
    classmap: ClassMap
    out: Path
    source_name: str
    include_background: bool = False
    min_area_m2: float = DEFAULT_MIN_AREA_M2
    regularize: bool = False  # the building class gets right angles (vectorize --regularize)
    regularize_m: float | None = None  # None: the engine's default (1 m, or 2 coarse pixels)
    chosen: list[str] | None = None  # the classes to export; None: by include_background
    simplify_m: float = 0.0  # > 0: borders simplified once for both sides (no gaps)

    @property
    def shared_borders(self) -> bool:
        """Simplified borders shared by neighbours, as ``vectorize --simplify M
        --shared-borders``; with regularised buildings each polygon is simplified on its
        own instead (the engine keeps shared borders for simplification alone)."""
        return self.simplify_m > 0 and not self.regularize

    def classes(self) -> list[str] | None:
        """The class names to export (None: all of them)."""
        if self.chosen is not None:
            return None if len(self.chosen) == len(self.classmap.names) else list(self.chosen)
        if self.include_background:
            return None
        kept = [n for n in self.classmap.names if n.lower() != BACKGROUND]
        return kept if len(kept) < len(self.classmap.names) else None


def class_map_of_layer(layer: QgsRasterLayer) -> ClassMap | None:
    """The layer as a ClassMap when it is one band of bytes drawn as a palette."""
    renderer = layer.renderer()
    if (
        layer.bandCount() != 1
        or layer.dataProvider().dataType(1) != Qgis.DataType.Byte
        or not isinstance(renderer, QgsPalettedRasterRenderer)
    ):
        return None
    classes = sorted(renderer.classes(), key=lambda c: c.value)
    size = int(max((c.value for c in classes), default=-1)) + 1
    names, colours = [f"class {i}" for i in range(size)], [(128, 128, 128)] * size
    for c in classes:
        names[int(c.value)] = c.label or names[int(c.value)]
        colours[int(c.value)] = c.color.getRgb()[:3]
    return ClassMap(layer_file(layer), names, colours)


def class_map_for(layer: QgsMapLayer | None, refined: dict[Path, ClassMap]) -> ClassMap | None:
    """The layer's class map: itself, or its latest refined map this session."""
    if not isinstance(layer, QgsRasterLayer):
        return None
    return class_map_of_layer(layer) or refined.get(layer_file(layer))


def default_min_area_m2(resolution_m: float) -> float:
    """The export's smallest polygon for a model working at ``resolution_m`` m/pixel:
    MIN_AREA_MODEL_PIXELS x MIN_AREA_MODEL_PIXELS of its pixels."""
    return (MIN_AREA_MODEL_PIXELS * resolution_m) ** 2


def default_export_classes(names: list[str], include_background: bool = False) -> list[str]:
    """The classes an export takes unless told: all but the background."""
    return [n for n in names if include_background or n.lower() != BACKGROUND]


def build_vectorize_job(
    layer: QgsMapLayer | None,
    refined: dict[Path, ClassMap],
    project: QgsProject,
    fallback_dir: Path | None = None,
    include_background: bool = False,
    min_area_m2: float = DEFAULT_MIN_AREA_M2,
    regularize: bool = False,
    regularize_m: float | None = None,
    classes: list[str] | None = None,
    simplify_m: float = 0.0,
    file_format: str = "GeoPackage",
) -> VectorizeJob:
    """The chosen raster if it is a class map, else its latest refined map this session;
    without the background class and polygons under ``min_area_m2`` unless asked; with
    ``regularize``, the building class's outlines get right angles and parallel edges
    where nearly so (tolerance ``regularize_m`` m, None or 0: the engine's default).
    ``classes`` (names) chooses the classes instead of ``include_background``;
    ``simplify_m`` > 0 simplifies with borders shared between classes; ``file_format``
    is a key of FORMATS (``<class map>_polygons.gpkg`` or ``.shp``, never overwritten)."""
    if not isinstance(layer, QgsRasterLayer):
        raise MapRefinerError(
            "Choose a raster layer: a refined class map, or an image you refined in this session."
        )
    classmap = class_map_for(layer, refined)
    if classmap is None:
        raise MapRefinerError(
            f"“{layer.name()}” is not a class map and was not refined in this "
            "session; refine it first, or choose its refined layer."
        )
    if regularize and REGULARIZED_CLASS not in (n.lower() for n in classmap.names):
        raise MapRefinerError(
            f"“{layer.name()}” has no {REGULARIZED_CLASS} class to regularise (its classes: "
            f"{', '.join(classmap.names)}); untick Regularise building outlines."
        )
    if classes is not None:
        unknown = [c for c in classes if c not in classmap.names]
        if unknown:
            raise MapRefinerError(
                f"“{layer.name()}” has no class {', '.join(unknown)} (its classes: "
                f"{', '.join(classmap.names)})."
            )
        if not classes:
            raise MapRefinerError("Choose at least one class to export.")
    if file_format not in FORMATS:
        raise MapRefinerError(f"Polygons are written as {' or '.join(FORMATS)}, not {file_format}.")
    if not 0 <= simplify_m < 1e4:
        raise MapRefinerError(
            f"The simplification tolerance must be 0 to 10000 m, not {simplify_m}."
        )
    out = output_beside(
        classmap.path, "_polygons", FORMATS[file_format], project_dir(project), fallback_dir
    )
    return VectorizeJob(
        classmap,
        out,
        layer.name(),
        include_background,
        float(min_area_m2),
        regularize,
        float(regularize_m) if regularize and regularize_m else None,
        list(classes) if classes is not None else None,
        float(simplify_m),
    )


def run_vectorize(
    job: VectorizeJob, progress: ProgressFn, is_cancelled: CancelFn
) -> VectorizeResult:
    from ...engine.vectors.vectorize import vectorize

    return vectorize(
        job.classmap.path,
        job.out,
        class_names=job.classmap.names,
        classes=job.classes(),
        min_area_m2=job.min_area_m2,
        simplify_m=job.simplify_m,
        shared_borders=job.shared_borders,
        regularize=[REGULARIZED_CLASS] if job.regularize else None,
        regularize_m=job.regularize_m,
        progress=progress,
        is_cancelled=is_cancelled,
        scores_path=job.classmap.scores
        if job.classmap.scores is not None and job.classmap.scores.exists()
        else None,
    )


def add_vectorize_result(
    result: VectorizeResult, job: VectorizeJob, project: QgsProject
) -> QgsVectorLayer:
    layer = QgsVectorLayer(str(result.path), f"{job.source_name} — polygons", "ogr")
    if not layer.isValid():
        raise MapRefinerError(f"QGIS cannot open the polygons {result.path}.")
    layer.setRenderer(class_renderer("class", job.classmap.names, job.classmap.colours))
    project.addMapLayer(layer)
    return layer
