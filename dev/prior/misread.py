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

A third misreading (session 25): the bands in their right order but the imagery's look
changed the way real sensors and days change it (`--looks`: haze, a colour cast, under-
and over-exposure, low contrast; see LOOKS), each scene's image rewritten with the look
applied and the same three refines made (`--section` names the report's section).

    python -m map_refiner.dev.prior.misread --looks default --section "A third misreading:
        haze and colour balance" --report docs/results_prior.md
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
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
#: Looks a real image can have (`--looks default`): name -> (per-band gain, blend
#: towards the airlight, contrast about the image's mean). Haze is the image blended
#: with a bright blue-grey airlight (satellite scenes on a hazy day); the casts are a
#: sensor's or a day's white balance; dark/bright are under- and over-exposure (clipped
#: at 255); flat is a low-contrast stretch.
LOOKS: dict[str, tuple[tuple[float, float, float], float, float]] = {
    "as is": ((1.0, 1.0, 1.0), 0.0, 1.0),
    "haze 0.3": ((1.0, 1.0, 1.0), 0.3, 1.0),
    "haze 0.5": ((1.0, 1.0, 1.0), 0.5, 1.0),
    "warm cast": ((1.25, 1.0, 0.75), 0.0, 1.0),
    "cool cast": ((0.8, 1.0, 1.25), 0.0, 1.0),
    "green cast": ((0.85, 1.2, 0.85), 0.0, 1.0),
    "dark": ((0.5, 0.5, 0.5), 0.0, 1.0),
    "bright": ((1.6, 1.6, 1.6), 0.0, 1.0),
    "flat": ((1.0, 1.0, 1.0), 0.0, 0.5),
}
#: Haze's airlight (RGB): bright and slightly blue, as scattered light is.
AIRLIGHT = (205.0, 215.0, 230.0)

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


def relook(rgb: np.ndarray, gain: Sequence[float], haze: float, contrast: float) -> np.ndarray:
    """``rgb`` (``(C, H, W)`` float32 on the 8-bit scale) with another look: ``contrast``
    about each band's mean, a per-band ``gain``, then ``haze`` towards AIRLIGHT; not
    clipped. The looks this study tests (LOOKS) and those dev/default_model/snap.py
    --looks trains on."""
    c = rgb.shape[0]
    if contrast != 1.0:
        mean = rgb.reshape(c, -1).mean(axis=1)[:, None, None]
        rgb = mean + contrast * (rgb - mean)
    rgb = rgb * np.asarray(gain[:c], np.float32)[:, None, None]
    if haze:
        rgb = (1.0 - haze) * rgb + haze * np.asarray(AIRLIGHT[:c], np.float32)[:, None, None]
    return rgb


def apply_look(image: Path, look: str, out: Path) -> Path:
    """``image`` (8-bit, RGB in its first three bands) rewritten at ``out`` with ``look``
    (a LOOKS name) applied, on the same grid; other bands are copied unchanged."""
    gain, haze, contrast = LOOKS[look]
    src = gdal.Open(str(image))
    arr = src.ReadAsArray().astype(np.float32)
    arr[:3] = relook(arr[:3], gain, haze, contrast)
    out_arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    dst = gdal.GetDriverByName("GTiff").Create(
        str(out), src.RasterXSize, src.RasterYSize, src.RasterCount, gdal.GDT_Byte
    )
    dst.SetGeoTransform(src.GetGeoTransform())
    dst.SetProjection(src.GetProjection())
    for i in range(src.RasterCount):
        dst.GetRasterBand(i + 1).WriteArray(out_arr[i])
    dst = None
    return out


def row(scene: str, bands: list[int] | str, results: dict[str, tuple[float, RefineResult]]) -> str:
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
    read = bands if isinstance(bands, str) else ",".join(map(str, bands))
    return f"| {scene} | {read} | {ious} | {shown} | {product.prior_note} |"


def study(
    names: list[str],
    orders: list[list[int]] | list[str],
    data: Path,
    tmp: Path,
    model: Path | None = None,
) -> list[str]:
    """The table's lines: each scene's reference refined as a prior from its image read
    in each band order (lists of band numbers) or with each look (LOOKS names)."""
    sc = scenes(data, ROOT / "out" / "corrections" / "data")
    lines = [
        "| scene | read as | IoU: product | IoU: no edge check | IoU: left in place "
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
            image = s.image
            if isinstance(bands, str):
                image = apply_look(s.image, bands, tmp / "look.tif")
            results = {}
            for way, fields in WAYS.items():
                out = tmp / "snapped.tif"
                res = refine_raster(
                    RefineParams(
                        image=image,
                        model_path=model,
                        out=out,
                        prior=s.reference,
                        prior_value_map=value_map,
                        bands=None if isinstance(bands, str) else bands,
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
    ap.add_argument(
        "--looks",
        default=None,
        help="instead of band orders, the image with these looks (LOOKS names, "
        "';'-separated, or 'default' for all of them)",
    )
    ap.add_argument("--model", type=Path, default=None, help="default: the snap model")
    ap.add_argument("--section", default=None, help="the report's section (default: SECTION)")
    ap.add_argument("--report", type=Path, default=None, help="also write the report's section")
    a = ap.parse_args(argv)
    readings: list[list[int]] | list[str]
    if a.looks:
        named_looks = a.looks.split(";")
        readings = [k for k in LOOKS if k != "as is"] if a.looks == "default" else named_looks
        unknown = [look for look in readings if look not in LOOKS]
        if unknown:
            ap.error(f"unknown looks {unknown}; known: {', '.join(LOOKS)}")
        how = f'--looks "{a.looks}"'
        read = "with the look given (LOOKS in dev/prior/misread.py)"
    else:
        readings = [[int(b) for b in o.split(",")] for o in a.bands.split(";")]
        how = f'--bands "{a.bands}"'
        read = "read with its bands in the order given"
    section = a.section or SECTION
    with tempfile.TemporaryDirectory(prefix="misread_") as tmp:
        lines = study(a.scenes.split(","), readings, a.data, Path(tmp), a.model)
    if a.report:
        named = f' --section "{a.section}"' if a.section else ""
        named += f" --model {a.model}" if a.model else ""
        head = (
            f"Generated by `python -m map_refiner.dev.prior.misread --scenes {a.scenes} {how}"
            f"{named} --report {a.report}` ({commit_label()}; this 2-core "
            "CPU). Each scene's reference (a right prior) refined with `refine --prior` (the "
            f"snap model) from the image {read}: as the "
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
        write_section(a.report, section, head + "\n\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
