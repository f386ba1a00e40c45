"""What a model's configuration says about matching an image's colours to its training
imagery (``colour_match``; engine/modelfile/colour_fit.py does the matching, session 46).

An image whose look (bundled_choice.look_features) lies farther than ``far`` from every
training area's (``homes``) is read with each band's percentiles (``percentiles``)
fitted onto the areas' pooled ones (``target``). The entry travels with the model, so a
fine-tuned model saved anywhere matches as its parent did; a model without it never
matches.
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


@dataclass(frozen=True)
class ColourMatch:
    """What a model's configuration says about matching images' colours."""

    percentiles: tuple[int, ...]
    target: np.ndarray  # (3, len(percentiles)): the training areas' pooled percentiles
    homes: dict[str, np.ndarray]  # each training area's look (LOOK_FEATURES values)
    far: float  # an image farther than this from every home is matched

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
        return cls(pct, target, homes, far)

    def to_config(self) -> dict[str, Any]:
        return {
            "percentiles": list(self.percentiles),
            "target": [[round(float(v), 3) for v in row] for row in self.target],
            "homes": {k: [round(float(x), 3) for x in v] for k, v in self.homes.items()},
            "far": self.far,
        }
