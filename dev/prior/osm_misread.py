"""Real OSM priors on imagery read in the wrong band order (session 41): does the edge
move for a prior the model cannot place (registration.edge_offset in
RefinePass._onto_edges_if_followed) put real, imprecise OSM outlines where a refine of
the imagery read right puts them?

Neither Xiamen nor Swellendam has an accurate reference, so the snapped map of the crop
read as it is stands in for one: each crop is refined from its OSM buildings with the
bands as they are, then read in each wrong order with the rule and with it switched
off; the table gives what registration did and the building IoU of each misread map
against the map read right (and the OSM layer's own IoU with that map).

    python -m map_refiner.dev.prior.osm_misread [--bands "2,3,1;3,2,1"]
        [--crops xiamen:3800:2600:2000,...] --json out/s41/osm_misread.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...engine.refine.pipeline import RefineParams, refine_raster
from ...engine.refine.refine_pass import RefinePass
from ..corrections.study import building_mask, iou
from .osm import ROOT, SCENES, burn, crop
from .shifted import short_note

CROPS = "xiamen:3800:2600:2000,xiamen:1000:1000:2000,xiamen:6000:4000:2000,swellendam:600:1270:498"


def snapped(
    image: Path, osm: Path, layer: str | None, bands: list[int] | None, out: Path
) -> tuple[np.ndarray, str]:
    """The building map of ``image`` refined from the OSM layer, and registration's note."""
    res = refine_raster(
        RefineParams(
            image=image,
            out=out,
            prior=osm,
            prior_layer=layer,
            bands=bands,
            device="cpu",
            overwrite=True,
        )
    )
    return building_mask(out), short_note(res.prior_note)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--bands", default="2,3,1;3,2,1")
    ap.add_argument("--crops", default=CROPS)
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    rows = []
    rule = RefinePass._onto_edges_if_followed
    with tempfile.TemporaryDirectory(dir=ROOT / "out") as tmp:
        t = Path(tmp)
        for spec in a.crops.split(","):
            name, x0, y0, side = spec.split(":")
            sc = SCENES[name]
            image = crop(a.data / sc.image, t / "crop.tif", int(x0), int(y0), int(side))
            osm = a.data / sc.osm
            osm_map = gdal.Open(str(burn(osm, sc.layer, image, t / "osm.tif"))).ReadAsArray() == 1

            right, note = snapped(image, osm, sc.layer, None, t / "right.tif")
            rows.append(
                {
                    "crop": spec,
                    "bands": "as is",
                    "rule": "-",
                    "vs_right": 100.0,
                    "osm_vs_right": round(100 * iou(osm_map, right), 1),
                    "registration": note,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            for order in a.bands.split(";"):
                bands = [int(b) for b in order.split(",")]
                for label in ("on", "off"):
                    if label == "off":
                        RefinePass._onto_edges_if_followed = lambda self, weak, search_m: weak
                    try:
                        got, note = snapped(image, osm, sc.layer, bands, t / "misread.tif")
                    finally:
                        RefinePass._onto_edges_if_followed = rule
                    rows.append(
                        {
                            "crop": spec,
                            "bands": order,
                            "rule": label,
                            "vs_right": round(100 * iou(got, right), 1),
                            "osm_vs_right": round(100 * iou(osm_map, right), 1),
                            "registration": note,
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rows, indent=1))
    print(
        "| crop | bands | edge move for an unplaceable prior | IoU with the map read right "
        "| registration |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['crop']} | {r['bands']} | {r['rule']} | {r['vs_right']} | {r['registration']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
