"""Dialog defaults remembered between sessions, all under one QgsSettings prefix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from qgis.core import QgsSettings

from ..engine.errors import MapRefinerError
from ..engine.vocabulary import label_mode

PREFIX = "map_refiner/"


@dataclass
class DialogDefaults:
    """What the dialog restores when it opens; empty model_path = the bundled model chosen
    for the image (ModelChooser.remembered)."""

    model_path: str = ""
    iterations: int = -1  # -1: the model's own default
    # Fine-grid iterations, when the raster allows them; -1: the model's own. (Named
    # detail_iterations before the bundled model had a detail RNN, with 0 by default:
    # the new name leaves those stored zeros behind.)
    detail_choice: int = -1
    device: str = "auto"
    output_dir: str = ""
    write_scores: bool = False
    add_coarse: bool = False
    label_mode: str = "sparse"
    label_field: str = "class"


def load_defaults() -> DialogDefaults:
    settings = QgsSettings()
    values: dict = {}
    for f in fields(DialogDefaults):
        default: Any = f.default
        values[f.name] = settings.value(PREFIX + f.name, default, type=type(default))
    defaults = DialogDefaults(**values)
    try:  # saved as "full" before the label modes had one name
        defaults.label_mode = label_mode(defaults.label_mode)
    except MapRefinerError:
        defaults.label_mode = "sparse"
    return defaults


def save_defaults(defaults: DialogDefaults) -> None:
    settings = QgsSettings()
    for key, value in asdict(defaults).items():
        settings.setValue(PREFIX + key, value)


def load_install_build() -> str:
    """The torch build last chosen in the installer (``auto``, ``cpu``, ``cu128``…)."""
    from .installer.builds import BUILD_KEYS

    value = QgsSettings().value(PREFIX + "installer/build", "auto", type=str)
    return value if value in BUILD_KEYS else "auto"


def save_install_build(key: str) -> None:
    QgsSettings().setValue(PREFIX + "installer/build", key)
