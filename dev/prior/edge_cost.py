"""What the edge move's mirror images cost a refine (session 41): each scene's reference
shifted 2 m, refined as a prior from the image read with its bands in another order (so
that the model's map cannot place it and the image's edges are asked), with the mirrors
as the product computes them and with none (RefinePass's ``mirrors_of`` replaced), in
one process, alone on the machine.

    python -m map_refiner.dev.prior.edge_cost [--scenes kampala_drone] [--bands 2,3,1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from osgeo import gdal

from ...engine.refine import refine_pass
from ...engine.refine.params import RefineParams
from ...engine.refine.pipeline import refine_raster
from ..corrections.scenes import scenes
from .shifted import ROOT, wrong_map


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default="kampala_drone")
    ap.add_argument("--bands", default="2,3,1")
    a = ap.parse_args(argv)
    found = scenes(a.data, ROOT / "out" / "corrections" / "data")
    bands = [int(b) for b in a.bands.split(",")]
    real = refine_pass.mirrors_of
    try:
        for name in a.scenes.split(","):
            s = found[name]
            like = gdal.Open(str(s.image))
            ref = gdal.Open(str(s.reference)).ReadAsArray() > 0
            with tempfile.TemporaryDirectory() as tmp:
                prior = wrong_map(ref, like, "shift:2", Path(tmp) / "prior.tif")
                for label, mirrors in (("with mirrors", real), ("without", lambda c: [])):
                    refine_pass.mirrors_of = mirrors
                    t0 = time.perf_counter()
                    res = refine_raster(
                        RefineParams(
                            image=s.image,
                            out=Path(tmp) / "out.tif",
                            prior=prior,
                            bands=bands,
                            overwrite=True,
                        )
                    )
                    seconds = time.perf_counter() - t0
                    print(f"{name} {label}: {seconds:.1f} s ({res.prior_note[:70]}...)")
    finally:
        refine_pass.mirrors_of = real
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
