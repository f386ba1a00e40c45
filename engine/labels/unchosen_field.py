"""A class field nobody chose: a label layer read without one takes every feature as
class 1 (``building``), which is right for a layer of building outlines (OSM's, a
cadastre's) but silently wrong for a correction layer whose own field says which polygons
are ``background``: they would be taught, and burned into the map, as buildings.

:class:`UnchosenFields` watches, while the features are read, the layer's text fields and
any field named like a class field (``class``, ``label``, ...) for values that name one of
the model's classes other than class 1; finding any, the read is refused with the field
to choose (reliability row 160)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from osgeo import ogr

from ..errors import MapRefinerError
from .classes import FOREGROUND, value_key

#: Field names read as a class field's: their integer values count as class indices too
#: (a text field's values count only as class names: an ``osm_id`` of 0 is no class).
CLASS_LIKE = frozenset(
    {"class", "class_id", "classid", "class_name", "classname", "klasse", "label", "category"}
)


@dataclass
class UnchosenFields:
    """The layer's fields that may hold classes, and the classes their values name."""

    class_names: list[str]
    fields: list[tuple[int, str, bool]]  # (index, name, integers are class indices)
    counts: dict[str, Counter[int]] = field(default_factory=dict)

    @classmethod
    def of_layer(cls, lyr: ogr.Layer, class_names: Sequence[str]) -> UnchosenFields:
        defn = lyr.GetLayerDefn()
        fields = []
        for i in range(defn.GetFieldCount()):
            fd = defn.GetFieldDefn(i)
            class_like = fd.GetName().strip().lower() in CLASS_LIKE
            if fd.GetType() == ogr.OFTString or (
                class_like and fd.GetType() in (ogr.OFTInteger, ogr.OFTInteger64, ogr.OFTReal)
            ):
                fields.append((i, fd.GetName(), class_like))
        return cls(list(class_names), fields)

    def see(self, feature: ogr.Feature) -> None:
        """Count the classes ``feature``'s watched fields name."""
        for index, name, by_index in self.fields:
            if not feature.IsFieldSetAndNotNull(index):
                continue
            found = self._class_of(value_key(feature.GetField(index)), by_index)
            if found is not None:
                self.counts.setdefault(name, Counter())[found] += 1

    def _class_of(self, key: str, by_index: bool) -> int | None:
        lowered = key.lower()
        for i, n in enumerate(self.class_names):
            if n.strip().lower() == lowered:
                return i
        if by_index and key.isdigit() and int(key) < len(self.class_names):
            return int(key)
        return None

    def naming(self) -> dict[str, Counter[int]]:
        """The fields whose values name a class other than class 1, with every class named."""
        return {f: c for f, c in self.counts.items() if any(k != FOREGROUND for k in c)}

    def refuse(self, name: str) -> None:
        """An error naming the field(s) to choose, if any names the model's other classes."""
        naming = self.naming()
        if not naming:
            return
        first = self.class_names[FOREGROUND]
        told = [
            f"{f!r} ("
            + ", ".join(f"{n} {self.class_names[k]}" for k, n in sorted(counts.items()))
            + ")"
            for f, counts in naming.items()
        ]
        fields = f"field {told[0]}" if len(told) == 1 else "fields " + ", ".join(told)
        chosen = next(iter(naming))
        raise MapRefinerError(
            f"No class field was chosen, so every feature of {name} would be read as {first}, "
            f"but its {fields} name{'s' if len(told) == 1 else ''} the model's classes. "
            f"Choose the class field (--class-field {chosen}; in QGIS: Class field), or, to "
            f"read every feature as {first}, leave that field out of the layer."
        )


def refuse_unchosen(lyr: ogr.Layer, class_names: Sequence[str], name: str) -> None:
    """:meth:`UnchosenFields.refuse` over every feature of ``lyr`` (its fields alone read)."""
    watch = UnchosenFields.of_layer(lyr, class_names)
    if not watch.fields:
        return
    defn = lyr.GetLayerDefn()
    watched = {i for i, _, _ in watch.fields}
    others = [
        defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount()) if i not in watched
    ]
    lyr.SetIgnoredFields([*others, "OGR_GEOMETRY", "OGR_STYLE"])
    lyr.ResetReading()
    try:
        for feature in lyr:
            watch.see(feature)
    finally:
        lyr.SetIgnoredFields([])
        lyr.ResetReading()
    watch.refuse(name)
