"""Correction polygons added to the dialog's correction layer by the map tools (*Turn
changes back*, *Outline with a click*): one edit command each, so the layer's Undo takes
one click away."""

from __future__ import annotations

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsGeometry,
    QgsProject,
    QgsVectorLayer,
    QgsWkbTypes,
)

from ..engine.errors import MapRefinerError
from .dialog.correction_layer import CLASS_FIELD


def add_polygons(
    corrections: QgsVectorLayer,
    class_field: str,
    polygons: list[tuple[str, str]],
    srs_wkt: str,
    command: str,
) -> None:
    """Add ``polygons`` (WKT in ``srs_wkt``, class name) to ``corrections`` in one edit
    command named ``command`` (what the layer's Undo says it takes away); a multipolygon
    goes in as its parts where the layer holds single polygons. Raises MapRefinerError."""
    field = class_field or CLASS_FIELD
    index = corrections.fields().indexOf(field)
    if index < 0:
        raise MapRefinerError(
            f"“{corrections.name()}” has no field “{field}” for the class; choose its class "
            "field in the dialog, or make a correction layer with New correction layer…"
        )
    source = QgsCoordinateReferenceSystem.fromWkt(srs_wkt)
    to_layer = None
    if source.isValid() and corrections.crs().isValid() and source != corrections.crs():
        to_layer = QgsCoordinateTransform(source, corrections.crs(), QgsProject.instance())
    single = not QgsWkbTypes.isMultiType(corrections.wkbType())
    features = []
    for wkt, name in polygons:
        geometry = QgsGeometry.fromWkt(wkt)
        if to_layer is not None:
            geometry.transform(to_layer)
        parts = geometry.asGeometryCollection() if single else [geometry]
        for part in parts:
            feature = QgsFeature(corrections.fields())
            feature.setGeometry(part)
            feature.setAttribute(index, name)
            features.append(feature)
    if not corrections.isEditable() and not corrections.startEditing():
        raise MapRefinerError(f"“{corrections.name()}” cannot be edited; choose another layer.")
    corrections.beginEditCommand(command)
    added = all(corrections.addFeature(f) for f in features)
    if not added:
        corrections.destroyEditCommand()
        raise MapRefinerError(f"The polygons could not be added to “{corrections.name()}”.")
    corrections.endEditCommand()
    corrections.triggerRepaint()
