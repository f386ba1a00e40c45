"""What a model's configuration says about matching an image's colours to its training
imagery (``colour_match``; engine/modelfile/colour_fit.py does the matching, session 46).

An image whose look (bundled_choice.look_features) lies farther than ``far`` from every
training area's (``homes``) is read with each band's percentiles (``percentiles``)
fitted onto the areas' pooled ones (``target``). The entry travels with the model, so a
fine-tuned model saved anywhere matches as its parent did; a model without it never
matches.

A *survey model* (``map-refiner survey-model``, session 47) carries the match judged once
over a set of images instead (``fixed``: the gains and offsets, the distance and nearest
area they were judged at, how many images): every image it reads takes those, so the tiles
of one survey are read alike, with no seam where a tile's own judgement would flip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import MapRefinerError

#: The percentiles the bundled models' entries are built with (dev/default_model/
#: colour_match.py): 2 to 98, the bulk of each band without its extremes.
PERCENTILES = (2, 10, 25, 50, 75, 90, 98)

#: The power curves colour_fit may fit (CURVE_POWERS) lie in this range; a file's fixed
#: match with another is refused.
POWER_RANGE = (0.2, 2.0)


@dataclass(frozen=True)
class Matched:
    """How an image's bands are taken onto the training imagery's colours: judged on the
    image (colour_fit.match_image), or once over a survey's images and kept in a survey
    model's configuration (``colour_match["fixed"]``, ``images`` >= 1)."""

    gains: np.ndarray  # (3,), on the 8-bit scale
    offsets: np.ndarray  # (3,)
    distance: float  # the image's (or survey's) look from the nearest training area's
    nearest: str
    images: int = 0  # judged once over this many images (a survey model); 0: this image
    # The power curve the values (8-bit scale) go through before the gains and offsets,
    # v' = g 255 (v / 255)^power + c: fitted only for imagery stored beyond 8 bits, whose
    # values may be a sensor's linear ones (colour_fit.CURVE_POWERS); 1: none.
    power: float = 1.0

    def note(self) -> str:
        gains = ", ".join(f"{g:.2f}" for g in self.gains)
        if self.power != 1.0:
            gains += (
                f", after a power curve of {self.power:.2f} (values beyond 8 bits, read as a "
                "sensor's linear ones)"
            )
        if self.images:
            return (
                f"the image's colours were matched to the model's training imagery as the "
                f"survey model fixes them for every image (judged once over "
                f"{self.images} image{'s' if self.images > 1 else ''}: the nearest training "
                f"area, {self.nearest}, {self.distance:.2f} apart); band gains {gains}"
            )
        return (
            f"the image's colours were matched to the model's training imagery (it looks "
            f"unlike all of it: the nearest, {self.nearest}, is {self.distance:.2f} apart); "
            f"band gains {gains}"
        )

    @classmethod
    def from_config(cls, d: Any) -> Matched:
        """A survey model's fixed match (``colour_match["fixed"]``), validated."""
        try:
            gains = np.asarray(d["gains"], dtype=np.float64)
            offsets = np.asarray(d["offsets"], dtype=np.float64)
            fixed = cls(
                gains,
                offsets,
                float(d["distance"]),
                str(d["nearest"]),
                int(d["images"]),
                float(d.get("power", 1.0)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MapRefinerError(
                "The model's fixed colour match is incomplete or malformed; make the survey "
                "model again (map-refiner survey-model).",
                details=repr(exc),
            ) from exc
        ok = (
            gains.shape == (3,)
            and offsets.shape == (3,)
            and np.isfinite(gains).all()
            and (gains > 0).all()
            and np.isfinite(offsets).all()
            and fixed.images >= 1
            and POWER_RANGE[0] <= fixed.power <= POWER_RANGE[1]
        )
        if not ok:
            raise MapRefinerError(
                "The model's fixed colour match needs three positive gains, three offsets "
                f"and a power in {POWER_RANGE[0]}-{POWER_RANGE[1]}; make the survey model "
                "again (map-refiner survey-model)."
            )
        return fixed

    def to_config(self) -> dict[str, Any]:
        return {
            "gains": [round(float(v), 6) for v in self.gains],
            "offsets": [round(float(v), 4) for v in self.offsets],
            "distance": round(self.distance, 3),
            "nearest": self.nearest,
            "images": self.images,
            **({"power": round(self.power, 4)} if self.power != 1.0 else {}),
        }


@dataclass(frozen=True)
class ColourMatch:
    """What a model's configuration says about matching images' colours."""

    percentiles: tuple[int, ...]
    target: np.ndarray  # (3, len(percentiles)): the training areas' pooled percentiles
    homes: dict[str, np.ndarray]  # each training area's look (LOOK_FEATURES values)
    far: float  # an image farther than this from every home is matched
    fixed: Matched | None = None  # a survey model's match, taken by every image

    @classmethod
    def from_config(cls, d: dict[str, Any]) -> ColourMatch | None:
        """The matching a configuration's ``colour_match`` entry describes (None: empty)."""
        if not d:
            return None
        try:
            pct = tuple(int(p) for p in d["percentiles"])
            target = np.asarray(d["target"], dtype=np.float64)
            homes = {str(k): np.asarray(v, dtype=np.float64) for k, v in d["homes"].items()}
            far = float(d["far"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MapRefinerError(
                "The model's colour matching entry is incomplete or malformed; re-export the "
                "model with Map Refiner.",
                details=repr(exc),
            ) from exc
        ok = (
            len(pct) >= 2
            and target.shape == (3, len(pct))
            and np.isfinite(target).all()
            and homes
            and len({v.shape for v in homes.values()}) == 1
            and all(v.ndim == 1 and v.size > 0 and np.isfinite(v).all() for v in homes.values())
            and math.isfinite(far)
            and far > 0
        )
        if not ok:
            raise MapRefinerError(
                "The model's colour matching entry has the wrong shape (three bands' "
                "percentiles, the training areas' looks, a positive distance); re-export the "
                "model with Map Refiner."
            )
        fixed = Matched.from_config(d["fixed"]) if "fixed" in d else None
        return cls(pct, target, homes, far, fixed)

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "percentiles": list(self.percentiles),
            "target": [[round(float(v), 3) for v in row] for row in self.target],
            "homes": {k: [round(float(x), 3) for x in v] for k, v in self.homes.items()},
            "far": self.far,
        }
        if self.fixed is not None:
            out["fixed"] = self.fixed.to_config()
        return out
