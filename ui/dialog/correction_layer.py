"""A new GeoPackage polygon layer for drawing labels, with a drop-down of class names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qgis.core import (
    QgsCoordinateTransformContext,
    QgsEditorWidgetSetup,
    QgsField,
    QgsFieldConstraints,
    QgsFields,
    QgsProject,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ...engine.errors import MapRefinerError
from ..layers import CORRECTIONS_ROLE, ROLE_KEY, class_renderer
from ..paths import output_beside
from ..sources import layer_file, project_dir

CLASS_FIELD = "class"
Colour = tuple[int, int, int]


def correction_layer_path(
    raster: QgsRasterLayer, project: QgsProject, fallback_dir: Path | None = None
) -> Path:
    return output_beside(
        layer_file(raster), "_corrections", ".gpkg", project_dir(project), fallback_dir
    )


def write_empty_polygons(path: Path, raster: QgsRasterLayer) -> None:
    fields = QgsFields()
    fields.append(QgsField(CLASS_FIELD, QVariant.String, len=64))
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = path.stem
    writer = QgsVectorFileWriter.create(
        str(path),
        fields,
        QgsWkbTypes.Type.MultiPolygon,
        raster.crs(),
        QgsCoordinateTransformContext(),
        options,
    )
    error = writer.hasError()
    message = writer.errorMessage()
    del writer  # closes the file
    if error != QgsVectorFileWriter.WriterError.NoError:
        raise MapRefinerError(f"Cannot create {path}: {message}")


def class_drop_down(layer: QgsVectorLayer, names: Sequence[str]) -> None:
    index = layer.fields().indexOf(CLASS_FIELD)
    layer.setEditorWidgetSetup(
        index, QgsEditorWidgetSetup("ValueMap", {"map": [{name: name} for name in names]})
    )
    layer.setFieldConstraint(index, QgsFieldConstraints.Constraint.ConstraintNotNull)


def create_correction_layer(
    raster: QgsRasterLayer,
    names: Sequence[str],
    colours: Sequence[Colour],
    project: QgsProject,
    fallback_dir: Path | None = None,
) -> QgsVectorLayer:
    """Create, style, add and start editing a correction layer beside the project or raster."""
    path = correction_layer_path(raster, project, fallback_dir)
    write_empty_polygons(path, raster)
    layer = QgsVectorLayer(f"{path}|layername={path.stem}", f"{raster.name()} — corrections", "ogr")
    if not layer.isValid():
        raise MapRefinerError(f"QGIS cannot open the new correction layer {path}.")
    class_drop_down(layer, names)
    layer.setRenderer(class_renderer(CLASS_FIELD, names, colours, fill_alpha=90))
    layer.setCustomProperty(ROLE_KEY, CORRECTIONS_ROLE)
    project.addMapLayer(layer, False)
    project.layerTreeRoot().insertLayer(0, layer)  # on top: results never hide it
    layer.startEditing()
    return layer
