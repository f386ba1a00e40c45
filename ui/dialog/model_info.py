"""What the dialog shows about a model file: classes, colours, resolution.

Only the safetensors header is read (no torch, no weights), so the dialog
shows a model instantly, even before torch is installed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class ModelSummary:
    path: Path
    name: str
    class_names: list[str]
    colours: list[Colour]
    resolution_m: float
    default_iterations: int
    tuned_on: str = ""  # a correction round's image (file name); "" for any other model
    detail_iterations: int = 0  # its own fine-grid iterations (a detail RNN); 0: none
    bands: tuple[int, ...] = (1, 2, 3)  # the image bands it reads (ModelConfig.bands)
    band_names: tuple[str, ...] = ("red", "green", "blue")  # what they are (band_names)
    drawn_on: tuple[str, ...] = ()  # every image whose drawn polygons it keeps (file
    # names, tuned_on's first: a model fine-tuned image after image keeps each one's)

    def foreign_to(self, raster: str | None) -> bool:
        """A fine-tuned model that keeps no polygons of ``raster`` (a file name)."""
        return bool(self.tuned_on) and raster is not None and raster not in self.images

    @property
    def images(self) -> tuple[str, ...]:
        return self.drawn_on or ((self.tuned_on,) if self.tuned_on else ())

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.class_names)} classes ({', '.join(self.class_names)}), "
            f"{self.resolution_m:g} m/pixel, {self.default_iterations} iterations by default"
        )


def model_path_or_default(path: Path | None) -> Path:
    from ...engine.modelfile.header import DEFAULT_MODEL_PATH

    return Path(path) if path else DEFAULT_MODEL_PATH


def read_model_summary(path: Path | None) -> ModelSummary:
    """Summary of ``path`` (None: the bundled model); raises MapRefinerError."""
    resolved = model_path_or_default(path)
    mtime = resolved.stat().st_mtime if resolved.exists() else 0.0
    return _read(str(resolved), mtime, path is None)


@functools.lru_cache(maxsize=8)
def _read(path: str, _mtime: float, bundled: bool) -> ModelSummary:
    from ...engine.errors import MapRefinerError
    from ...engine.labels.kept import kept_images
    from ...engine.modelfile.header import read_model_config

    if bundled and not Path(path).exists():
        raise MapRefinerError(
            "The bundled default model is missing from the plugin folder; "
            "reinstall the plugin or choose a model file."
        )
    config = read_model_config(path)
    return ModelSummary(
        Path(path),
        config.name,
        list(config.class_names),
        config.colours,
        float(config.ground_resolution_m),
        int(config.default_iterations),
        tuned_image(config.corrections, config.training.get("finetune")),
        int(config.detail_iterations),
        tuple(int(b) for b in config.bands),
        tuple(str(n) for n in config.band_names) if isinstance(config.band_names, list) else (),
        tuple(kept_images(config.corrections)),
    )


def tuned_image(corrections: object, rounds: object) -> str:
    """The image a fine-tuned model's drawn polygons belong to (its last round's)."""
    if isinstance(corrections, dict) and corrections.get("image"):
        return str(corrections["image"])
    records = [r for r in rounds if isinstance(r, dict)] if isinstance(rounds, list) else []
    return str(records[-1].get("image") or "") if records else ""


def model_note(summary: ModelSummary | None, raster: str | None, why: str = "") -> str:
    """What the dialog says under a fine-tuned model: the image it was made for and
    whether it is the chosen raster (``raster``: its file name, None when not a file),
    and why the model is chosen, when the dialog chose it (``why``)."""
    if summary is None or not summary.tuned_on:
        return why
    if raster is None or raster == summary.tuned_on:
        note = f"Fine-tuned on {summary.tuned_on}: its drawn polygons show in the map."
    elif raster in summary.images:
        note = (
            f"Fine-tuned on {summary.tuned_on} and before that on this raster ({raster}): "
            "the polygons drawn on it show in the map."
        )
    else:
        note = (
            f"Fine-tuned on {summary.tuned_on}, not on this raster ({raster}): only its "
            "networks apply here, and its drawn polygons only where this raster holds the "
            "same pixels (a crop or mosaic of the image they were drawn on). Choose the "
            "bundled model or another for this raster if that is not what you want."
        )
    return f"{note} {why}".strip()


def model_label(path: Path | None) -> str | None:
    """The name a result layer carries for the model at ``path``: None for the bundled
    model (or its file chosen explicitly), else the model's own name (a fine-tune
    names itself after its image and round), or its file name if it cannot be read."""
    from ...engine.errors import MapRefinerError

    resolved = model_path_or_default(path)
    if path is None or resolved.resolve() == model_path_or_default(None).resolve():
        return None
    try:
        return read_model_summary(path).name or resolved.stem
    except MapRefinerError:
        return resolved.stem


def is_fine_tuned(path: Path) -> bool:
    """Whether the model at ``path`` came out of a correction round (it keeps polygons
    drawn on one image, or records fine-tune rounds); False if it cannot be read."""
    from ...engine.errors import MapRefinerError
    from ...engine.modelfile.header import read_model_config

    try:
        config = read_model_config(path)
    except MapRefinerError:
        return False
    return bool(config.corrections) or bool(config.training.get("finetune"))
