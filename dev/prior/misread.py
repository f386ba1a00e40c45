"""Right priors on imagery the model misreads: its bands in the wrong order.

Vaihingen's false colour was the one scene where the model's map dragged a right prior
off its roofs (docs/results_prior.md, "Every scene with an accurate reference"), and the
edge check's threshold (registration.EDGE_AGREEMENT) was set on it alone. A cartographer
who picks the wrong bands (blue-green-red, a band dropped and another repeated, one band
as grey) makes the same kind of imagery on any scene, with a known right answer: the
scene's reference. Each scene's reference is refined as a prior (`refine --prior`, the
snap model) from the image read with each band order, three ways: as the product does
(registration and the edge check), with the edge check off (`--no-prior-edge-check`),
and left in place (`--no-prior-shift`); the table gives the snapped map's building IoU,
what registration did and the edge ratio of the move it proposed.

    python -m map_refiner.dev.prior.misread [--scenes a,b] [--bands "3,2,1;1,1,1"]
        [--report docs/results_prior.md]
        # about 4 min for the default eight scenes and three orders on the 2-core CPU
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...engine.refine.params import RefineParams, RefineResult
from ...engine.refine.pipeline import refine_raster
from ..corrections.scenes import scenes
from ..corrections.study import iou
from ..provenance import commit_label
from .sections import write_section
from .shifted import ROOT

#: The report's section this study writes.
SECTION = "A second misreading: bands in the wrong order"
SCENES = (
    "austin_dev",
    "austin_enh",
    "kampala_drone",
    "nepal_drone",
    "rio_wv2",
    "isprs_potsdam",
    "loveda_0",
    "loveda_1",
)
ORDERS = "3,2,1;2,3,1;1,1,1"
#: The three ways each prior is refined: RefineParams fields set.
WAYS = {
    "product": {},
    "no edge check": {"prior_edges": False},
    "in place": {"prior_register": False},
}

gdal.UseExceptions()


def building_iou(class_map: Path, ref: np.ndarray) -> float:
    """Building IoU (%) of a snapped map (class 1 building) against the 0/1 reference."""
    return 100.0 * iou(gdal.Open(str(class_map)).ReadAsArray() == 1, ref)


def row(scene: str, bands: list[int], results: dict[str, tuple[float, RefineResult]]) -> str:
    """One markdown row: the three ways' IoUs, the product's note and the move's ratio."""
    product = results["product"][1]
    measured = [  # the move's ratio, the prior's support, the reshape ratio
        f"{label}{value:.2f}"
        for label, value in (
            ("move ", product.prior_edge_ratio),
            ("support ", product.prior_edge_support),
            ("reshape ", product.prior_reshape_ratio),
        )
        if value is not None
    ]
    shown = ", ".join(measured) or "-"
    ious = " | ".join(f"{results[w][0]:.1f}" for w in WAYS)
    return f"| {scene} | {','.join(map(str, bands))} | {ious} | {shown} | {product.prior_note} |"


def study(names: list[str], orders: list[list[int]], data: Path, tmp: Path) -> list[str]:
    sc = scenes(data, ROOT / "out" / "corrections" / "data")
    lines = [
        "| scene | bands read | IoU: product | IoU: no edge check | IoU: left in place "
        "| edges measured | what the product did |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for name in names:
        s = sc[name]
        raw = gdal.Open(str(s.reference)).ReadAsArray()
        ref = raw > 0
        value_map = {int(v): int(v > 0) for v in np.unique(raw)}
        for bands in orders:
            results = {}
            for way, fields in WAYS.items():
                out = tmp / "snapped.tif"
                res = refine_raster(
                    RefineParams(
                        image=s.image,
                        out=out,
                        prior=s.reference,
                        prior_value_map=value_map,
                        bands=bands,
                        device="cpu",
                        overwrite=True,
                        **fields,
                    )
                )
                results[way] = (building_iou(out, ref), res)
            lines.append(row(name, bands, results))
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--bands", default=ORDERS, help="band orders, ';'-separated")
    ap.add_argument("--report", type=Path, default=None, help="also write the report's section")
    a = ap.parse_args(argv)
    orders = [[int(b) for b in o.split(",")] for o in a.bands.split(";")]
    with tempfile.TemporaryDirectory(prefix="misread_") as tmp:
        lines = study(a.scenes.split(","), orders, a.data, Path(tmp))
    if a.report:
        head = (
            f'Generated by `python -m map_refiner.dev.prior.misread --scenes {a.scenes} --bands "'
            f'{a.bands}" --report {a.report}` ({commit_label()}; this 2-core '
            "CPU). Each scene's reference (a right prior) refined with `refine --prior` (the "
            "snap model) from the image read with its bands in the order given: as the "
            "product does, with `--no-prior-edge-check`, and with `--no-prior-shift`; "
            "building IoU (%) against the reference. *Edges measured* (the product's "
            "refine): *move*, the edge strength under the outlines registration's move "
            "would give over that as drawn (registration.edge_ratio); *support*, where the "
            "model's map agreed too little with the prior to place it, the edge strength "
            "under the prior's outlines over the image's mean (registration.edge_support); "
            "*reshape*, the edge strength under the outlines of the map the networks make "
            "from the placed prior over that under the prior's own "
            "(RefinePass.prior_reshape_ratio)."
        )
        write_section(a.report, SECTION, head + "\n\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
