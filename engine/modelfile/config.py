"""The JSON-serialisable description that rebuilds a model and tells how to feed it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import MapRefinerError
from ..limits import check_iterations, check_model_resolution
from .colour_match import ColourMatch

#: The newest model file format this version reads. 2: the file may hold a detail RNN
#: (``detail_iterations`` > 0, tensors ``detail_rnn.*``); 3: a correction round's file may
#: hold its parent's networks (``change_gate`` > 0, tensors ``gate_parent.*``, the parent's
#: configuration in ``gate_parent``); 4: the round's changes are kept only to some classes
#: (``change_to``); 5: images unlike the training imagery are read with their colours
#: matched (``colour_match``); 6: every image with the colours matched one way, a survey
#: model's (``colour_match["fixed"]``); 7: that fixed match with a power curve (imagery
#: stored beyond 8 bits, session 49). Files without any of these are still written as 1,
#: so that earlier versions keep reading them.
FORMAT_VERSION = 7
#: How a model's input is normalised (ModelConfig.normalisation).
NORMALISATIONS = ("model", "image")
DEFAULT_COLOURS: list[tuple[int, int, int]] = [
    (235, 235, 225),
    (200, 40, 40),
    (250, 190, 40),
    (40, 110, 200),
    (60, 160, 60),
    (150, 90, 200),
    (120, 120, 120),
    (0, 170, 170),
]


@dataclass
class ClassInfo:
    name: str
    colour: tuple[int, int, int]


@dataclass
class ModelConfig:
    """Architecture, classes, input contract and provenance of a model file."""

    classes: list[ClassInfo]
    bands: list[int] = field(default_factory=lambda: [1, 2, 3])
    band_names: list[str] = field(default_factory=lambda: ["red", "green", "blue"])
    mean: list[float] = field(default_factory=lambda: [127.5, 127.5, 127.5])
    std: list[float] = field(default_factory=lambda: [64.0, 64.0, 64.0])
    # "model": every image is normalised with ``mean``/``std`` above; "image": with the
    # image's own band statistics on the model grid (engine/refine/predict.py).
    normalisation: str = "model"
    # With a fixed normalisation: an image whose look lies far from every training area's
    # is read with its colours matched to the training imagery (the entry's fields:
    # engine/modelfile/colour_match.py; the matching: engine/modelfile/colour_fit.py, session
    # 46). Empty: never.
    colour_match: dict[str, Any] = field(default_factory=dict)
    ground_resolution_m: float = 1.0
    default_iterations: int = 5
    # RNN iterations the model runs by default on a grid finer than its own, with its own
    # detail RNN (tensors ``detail_rnn.*``, trained on that grid: dev/detail/train.py),
    # on imagery at least tiling.DETAIL_AUTO_FINER times finer than ``ground_resolution_m``.
    # 0: the file holds no detail RNN (detail iterations, when asked for, reuse ``rnn``).
    detail_iterations: int = 0
    # The model grid's scores are divided by this before the detail iterations (and the
    # sure-pixel rule, predict.detail_scores): a fine-tuned model is much surer of itself
    # than the maps its detail RNN learnt from, and the RNN moves sure scores less; a
    # fine-tune sets it so that its map is as often sure as its parent's
    # (training/corrections/temperature.py). 1: as trained. The bundled default's is 2
    # (session 35: starting maps on scenes its networks never saw gain at 2;
    # docs/results_detail.md "Session 35").
    detail_temperature: float = 1.0
    class_specific: bool = True
    name: str = "map-refiner model"
    training: dict[str, Any] = field(default_factory=dict)
    # Polygons a fine-tune was taught with, kept for the image they were drawn on
    # (engine/labels/kept.py); empty for a model that was not fine-tuned.
    corrections: dict[str, Any] = field(default_factory=dict)
    # set by validate(): 7 with a fixed match's power curve, 6 with a fixed colour match,
    # 5 with colour_match, 4 with change_to, 3 with a gate parent, 2 with a detail RNN
    format_version: int = 1
    # A correction round's map keeps a change from its parent's map only where the round's
    # networks give the new class at least this probability (the parent's class
    # elsewhere; engine/networks/gate.py); 0: no gate. Set by a fine-tune whose fit was
    # adopted (FitParams.change_gate), with the parent's configuration in ``gate_parent``
    # and its networks in the file (MapRefinerNet.gate_parent, tensors ``gate_parent.*``).
    change_gate: float = 0.0
    gate_parent: dict[str, Any] = field(default_factory=dict)
    # The classes a gated round's changes may go to (the classes of its drawn polygons when
    # they are not all of the model's; FitParams.change_to_drawn); empty: any class.
    change_to: list[int] = field(default_factory=list)
    architecture: str = "maggiori2017-fcn-rnn"
    # Set only on a configuration as a raster is fed (refine.predict.for_image), never
    # saved nor read from a file: [scale, power] where a colour match fitted a power
    # curve (colour_fit.CURVE_POWERS): raw values are multiplied by ``scale`` onto the
    # 8-bit scale and taken to 255 (v / 255)^power before ``mean``/``std``. Empty: none.
    input_curve: list[float] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return len(self.bands)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def background(self) -> int | None:
        """The index of the class named background (any case; None: there is none)."""
        names = [n.lower() for n in self.class_names]
        return names.index("background") if "background" in names else None

    @property
    def colours(self) -> list[tuple[int, int, int]]:
        """The classes' RGB colours, in class order (for colour tables and renderers)."""
        return [c.colour for c in self.classes]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["input_curve"]  # how one raster is fed, not part of the model
        d["classes"] = [{"name": c.name, "colour": list(c.colour)} for c in self.classes]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        if not isinstance(d, dict):
            raise MapRefinerError(
                f"The model's configuration is a JSON {type(d).__name__}, not an object of "
                "fields; re-export the model with Map Refiner."
            )
        try:
            if d.get("architecture") != "maggiori2017-fcn-rnn":
                raise MapRefinerError(
                    f"Unsupported model architecture {d.get('architecture')!r}; "
                    "this version of Map Refiner reads 'maggiori2017-fcn-rnn' models."
                )
            if int(d.get("format_version", 0)) > FORMAT_VERSION:
                raise MapRefinerError(
                    "The model file was written by a newer Map Refiner; update the plugin."
                )
            classes = [
                ClassInfo(str(c["name"]), tuple(int(v) for v in c["colour"]))  # type: ignore[arg-type]
                for c in d["classes"]
            ]
            known = {f for f in cls.__dataclass_fields__} - {"input_curve"}
            kwargs = {k: v for k, v in d.items() if k in known and k != "classes"}
            cfg = cls(classes=classes, **kwargs)
        except MapRefinerError:
            raise
        except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise MapRefinerError(
                "The model's configuration is incomplete or malformed; re-export the model "
                "with Map Refiner.",
                details=repr(exc),
            ) from exc
        cfg.validate()
        return cfg

    def validate(self) -> None:
        try:
            self.ground_resolution_m = float(self.ground_resolution_m)
            self.default_iterations = int(self.default_iterations)
            self.detail_iterations = int(self.detail_iterations)
            self.detail_temperature = float(self.detail_temperature)
            self.change_gate = float(self.change_gate)
            self.change_to = [int(c) for c in self.change_to]
            self.bands = [int(b) for b in self.bands]
            self.mean = [float(v) for v in self.mean]
            self.std = [float(v) for v in self.std]
        except (TypeError, ValueError, OverflowError) as exc:
            raise MapRefinerError(
                "The model's configuration has a non-numeric resolution, band, "
                "mean, std or class list; re-export the model with Map Refiner.",
                details=repr(exc),
            ) from exc
        if not all(
            isinstance(d, dict)
            for d in (self.training, self.corrections, self.gate_parent, self.colour_match)
        ):
            raise MapRefinerError(
                "The model's configuration has a 'training', 'corrections', 'gate_parent' or "
                "'colour_match' entry that is not a JSON object; re-export the model with "
                "Map Refiner."
            )
        ColourMatch.from_config(self.colour_match)  # raises on a malformed entry
        n = len(self.bands)
        if self.normalisation not in NORMALISATIONS:
            raise MapRefinerError(
                f"The model's configuration asks for normalisation {self.normalisation!r}; "
                f"this version of Map Refiner knows {' and '.join(NORMALISATIONS)}. Update "
                "the plugin or re-export the model."
            )
        if self.num_classes < 2:
            raise MapRefinerError("A model needs at least two classes.")
        if self.num_classes > 255:  # class maps are uint8 with 255 as nodata
            raise MapRefinerError(
                f"A model has at most 255 classes (the class map is 8-bit, 255 marks no "
                f"data); this one has {self.num_classes}."
            )
        for c in self.classes:
            if len(c.colour) != 3 or not all(0 <= v <= 255 for v in c.colour):
                raise MapRefinerError(
                    f"The colour of class {c.name!r} in the model's configuration is "
                    f"{list(c.colour)}; a colour is three values 0-255 (red, green, blue). "
                    "Fix it or re-export the model with Map Refiner."
                )
        if n < 1 or len(self.mean) != n or len(self.std) != n:
            raise MapRefinerError(
                "The model's band list and its normalisation (mean/std) differ in length."
            )
        if not all(math.isfinite(v) for v in self.mean + self.std):
            raise MapRefinerError(
                "The model's normalisation (mean/std) is not finite; re-export the model "
                "with Map Refiner."
            )
        if any(s <= 0 for s in self.std):
            raise MapRefinerError("The model's normalisation has a non-positive std.")
        self.ground_resolution_m = check_model_resolution(self.ground_resolution_m)
        self.default_iterations = check_iterations(
            self.default_iterations, "The model's default number of iterations"
        )
        self.detail_iterations = check_iterations(
            self.detail_iterations, "The model's default number of detail iterations"
        )
        if not (math.isfinite(self.detail_temperature) and 0.1 <= self.detail_temperature <= 100):
            raise MapRefinerError(
                f"The model's detail temperature is {self.detail_temperature}; it must be "
                "between 0.1 and 100. Re-export the model with Map Refiner."
            )
        if not (math.isfinite(self.change_gate) and 0.0 <= self.change_gate < 1.0):
            raise MapRefinerError(
                f"The model's change gate is {self.change_gate}; it must be at least 0 and "
                "under 1. Re-export the model with Map Refiner."
            )
        if self.change_gate > 0 and not self.gate_parent:
            raise MapRefinerError(
                "The model has a change gate but no parent to gate against; the file is "
                "damaged or was edited by hand. Fine-tune again."
            )
        if self.change_to and (
            self.change_gate <= 0
            or len(set(self.change_to)) != len(self.change_to)
            or not all(0 <= c < self.num_classes for c in self.change_to)
        ):
            raise MapRefinerError(
                f"The model keeps its changes only to classes {self.change_to}, which are not "
                f"distinct classes of its {self.num_classes} with a change gate; the file is "
                "damaged or was edited by hand. Fine-tune again."
            )
        parent = self.parent_config()  # validated as it is read (from_dict)
        if parent is not None and (
            parent.num_classes != self.num_classes
            or parent.ground_resolution_m != self.ground_resolution_m
            or list(parent.bands) != list(self.bands)
        ):
            raise MapRefinerError(
                "The model's gate parent has other classes, bands or grid than the model; the "
                "file is damaged or was edited by hand. Fine-tune again."
            )
        self.format_version = (
            7
            if "power" in self.colour_match.get("fixed", {})
            else 6
            if "fixed" in self.colour_match
            else 5
            if self.colour_match
            else 4
            if self.change_to
            else 3
            if self.gate_parent
            else 2
            if self.detail_iterations
            else 1
        )

    def without_colour_match(self) -> ModelConfig:
        """A copy that reads every image as it is: no colour matching entry, in its gate
        parents' configurations either (a refine or fine-tune told not to match)."""
        return self.with_colour_match({})

    def with_colour_match(self, entry: dict[str, Any]) -> ModelConfig:
        """A copy whose colour matching entry is ``entry`` (a survey model's fixed one, or
        empty: read every image as it is), in its gate parents' configurations too, so
        that a round's parent networks read each image as the round's do."""

        def put(d: dict[str, Any]) -> dict[str, Any]:
            out = {k: v for k, v in d.items() if k != "colour_match"}
            if entry:
                out["colour_match"] = entry
            if isinstance(out.get("gate_parent"), dict) and out["gate_parent"]:
                out["gate_parent"] = put(out["gate_parent"])
            return out

        return ModelConfig.from_dict(put(self.to_dict()))

    def parent_config(self) -> ModelConfig | None:
        """The configuration of the networks a correction round gates its changes against
        (``gate_parent``); None when it has none."""
        return ModelConfig.from_dict(self.gate_parent) if self.gate_parent else None


def make_classes(names: Sequence[str]) -> list[ClassInfo]:
    """Class list with the default palette (background first, if present)."""
    return [ClassInfo(n, DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)]) for i, n in enumerate(names)]
