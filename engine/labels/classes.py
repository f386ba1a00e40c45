"""Which class a label value stands for: value maps, class names or indices."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

from ..errors import MapRefinerError

IGNORE = 255  # label value the loss and the scores skip
FOREGROUND = 1  # class of every feature when no class field is given


def value_key(value: object) -> str:
    """A field or pixel value as the string a value map is keyed by (``1.0`` -> ``"1"``)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def check_class_index(index: object, num_classes: int, what: str) -> int:
    if (
        isinstance(index, bool)
        or not isinstance(index, numbers.Integral)
        or not 0 <= int(index) < num_classes
    ):
        raise MapRefinerError(
            f"{what} maps to class {index!r}, but the classes are 0.."
            f"{num_classes - 1}; fix the value map."
        )
    return int(index)


class ClassResolver:
    """Maps a feature's class-field value to a class index, or None when unusable."""

    def __init__(
        self, class_names: Sequence[str], value_map: Mapping[object, int] | None, constant: bool
    ) -> None:
        k = len(class_names)
        if k < 2 or k >= IGNORE:
            raise MapRefinerError(f"Labels need 2 to {IGNORE - 1} class names, not {k}.")
        self.constant = constant
        self.num_classes = k
        self.names = {n.strip().lower(): i for i, n in enumerate(class_names)}
        self.value_map = (
            None
            if value_map is None
            else {
                value_key(v): check_class_index(c, k, f"Value {v!r}") for v, c in value_map.items()
            }
        )
        self._unknown: list[object] = []  # distinct values with no class, as read

    def resolve(self, value: object) -> int | None:
        if self.constant:
            return FOREGROUND
        found = None if value is None else self._lookup(value_key(value))
        if found is None and len(self._unknown) < 5:
            if repr(value) not in map(repr, self._unknown):
                self._unknown.append(value)
        return found

    def unknown_examples(self) -> str:
        return ", ".join(map(repr, self._unknown)) or "(none)"

    def unknown_values(self) -> list[object]:
        """Up to five distinct values no class was found for, as read (None: empty)."""
        return list(self._unknown)

    def _lookup(self, key: str) -> int | None:
        if self.value_map is not None:
            return self.value_map.get(key)
        if key.lower() in self.names:
            return self.names[key.lower()]
        try:
            index = int(key)
        except ValueError:
            return None
        return index if 0 <= index < self.num_classes else None
