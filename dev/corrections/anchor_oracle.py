"""What the fit's anchors cost: the correction-loop study with every anchor labelled from
the accurate reference instead of the base model's map (the same pixels: where the base
model is sure), and how many of the anchors the base model gets wrong. An oracle (it
reads the reference), not a method: it says how much a fit would gain from anchors that
are right, which is the question for the next step of the loop.

    python -m map_refiner.dev.corrections.anchor_oracle \\
        --model out/multiscene/old_default.safetensors [--seed S] [--scenes a,b] \\
        [--teacher M|reference] [--teacher-half right|left] [--rows NAME] \\
        [--measure-only] [--stability strong|mild] [--set FIELD=VALUE]
        # rows -> out/corrections/NAME; lines on the anchors per round; run alone

``--measure-only`` leaves the anchors as the product labels them and only prints how many
the reference contradicts (per class); ``--stability`` also splits each class's anchors
by whether the base networks keep their class under small input changes (a test-time
check of its sureness); ``--teacher M`` labels the anchors on the image's right half (the
study's scored half) with model M's refined map instead of the reference (``--teacher
reference --teacher-half left``: the reference on the left half, where the user draws: a
user who also confirms the map where they work).

Not a product path: it replaces the fine-tune's window loader and CorrectionFit in its
own process. Its rows are the study's (dev/corrections/study.py): compare them with
``compare_rows``. Session 17's figures: docs/results_corrections.md "Session 17".
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal
from torch.nn import functional as F

from ...engine.labels.rasters import downsample_window, pixels_of_cells
from ...engine.networks.inference import class_argmax, coarse_scores, refine_heat
from ...engine.networks.models import pad_to_stride
from ...training.corrections import finetune as ft
from ...training.corrections.fit import CorrectionFit
from ...training.data import model_grids
from ...training.tile import IGNORE
from .scenes import scenes
from .study import ROOT, parse_overrides, refine, run_scene

gdal.UseExceptions()

#: The perturbation set MeasuredFit's stability_line uses ("": none; --stability).
STABILITY = {"set": ""}
#: Which half of the image the teacher's labels cover (--teacher-half).
_HALF = {"teacher": "right"}
#: The reference of the scene being studied (set per scene).
_REFERENCE: dict[str, Path] = {}


def _on_window(path: Path, size: tuple[int, int], window: tuple, building: int) -> np.ndarray:
    """1 where a class raster of the image's grid holds ``building`` (0 elsewhere), on the
    model grid of ``size`` (width, height) by the fine-tune's own vote
    (engine/labels/rasters.downsample_window: how drawn labels reach the model grid), cut
    to ``window`` (x0, y0, x1, y1); ``building`` -1: any value over 0 (a reference)."""
    ds = gdal.Open(str(path))
    x0, y0, x1, y1 = window
    px0, px1 = pixels_of_cells(ds.RasterXSize, size[0], x0, x1)
    py0, py1 = pixels_of_cells(ds.RasterYSize, size[1], y0, y1)
    values = ds.GetRasterBand(1).ReadAsArray(px0, py0, px1 - px0, py1 - py0)
    mask = values > 0 if building < 0 else values == building
    return downsample_window(
        mask.astype(np.uint8), (ds.RasterXSize, ds.RasterYSize), size, window
    ).astype(np.int64)


def _with_reference(load):  # type: ignore[no-untyped-def]
    """``load_corrections`` that also puts the reference on the window's model pixels
    (``tile.reference``: 1 building, 0 not) and, with a teacher, its map on one half
    (``tile.teacher``, -1 on the other)."""

    def wrapped(image_path, source, config, bands=None, input_resolution_m=None, *rest):  # type: ignore[no-untyped-def]
        corr = load(image_path, source, config, bands, input_resolution_m, *rest)
        grids = model_grids(gdal.Open(str(image_path)), config, input_resolution_m)
        size, window = (grids.model_width, grids.model_height), corr.tile.window
        corr.tile.reference = torch.from_numpy(_on_window(_REFERENCE["path"], size, window, -1))
        if "teacher" in _REFERENCE:
            # a refine's class map holds building as 1, a reference as anything over 0
            building = 1 if _REFERENCE["teacher"] != _REFERENCE["path"] else -1
            teacher = torch.from_numpy(_on_window(_REFERENCE["teacher"], size, window, building))
            x0, x1 = window[0], window[2]
            left = max(0, min(x1, grids.model_width // 2) - x0)  # window columns on the left
            if _HALF["teacher"] == "right":
                teacher[:, :left] = -1
            elif _HALF["teacher"] == "left":
                teacher[:, left:] = -1
            corr.tile.teacher = teacher
        return corr

    return wrapped


def anchor_line(fit: CorrectionFit, reference: torch.Tensor) -> str:
    """How many anchors and how many of them ``reference`` (the window's true classes) says
    the base model gets wrong; then per class the base model anchors: its anchors, their
    share wrong, and the drawn pixels it called that class wrongly (the user's corrections
    against it) with the share of those it was 0.9 sure of."""
    a, base, lab = fit.anchor, fit.base.cpu(), fit.labels
    wrong = float((base[a] != reference[a]).float().mean()) if a.any() else 0.0
    parts = [f"anchors {int(a.sum())} at >= {fit.anchor_confidence:g}, {100 * wrong:.1f} % wrong"]
    with torch.no_grad():
        conf = torch.softmax(fit.base_scores, 0).max(0).values.cpu()
    for c in torch.unique(base[a]).tolist():
        ac = a & (base == c)
        against = (lab != IGNORE) & (lab != c) & (base == c)
        sure = (
            f"{100 * float((conf[against] >= 0.9).float().mean()):.0f} %" if against.any() else "-"
        )
        parts.append(
            f"class {c}: {int(ac.sum())} anchors, "
            f"{100 * float((reference[ac] != c).float().mean()):.1f} % wrong; "
            f"drawn against it {int(against.sum())} px, {sure} 0.9-sure"
        )
    return "; ".join(parts)


#: Input changes the stability probe applies (normalised units): contrast, brightness, one
#: band's offset, and a scale change (resampled down and back up); ``--stability`` picks a set.
PERTURBATIONS = {
    "strong": (
        "contrast:0.7",
        "contrast:1.3",
        "bright:-0.4",
        "bright:0.4",
        "band0:0.4",
        "scale:0.7",
    ),
    "mild": (
        "contrast:0.85",
        "contrast:1.15",
        "bright:-0.2",
        "bright:0.2",
        "band0:0.2",
        "scale:0.85",
    ),
}


def perturbed_classes(fit: CorrectionFit, how: str) -> torch.Tensor:
    """The base networks' class map over the window of an input changed by ``how``."""
    kind, _, v = how.partition(":")
    x = fit.x.clone()
    value = float(v)
    if kind == "contrast":
        x = x * value
    elif kind == "bright":
        x = x + value
    elif kind == "band0":
        x[:, 0] += value
    h, w = x.shape[-2:]
    if kind == "scale":
        small = F.interpolate(x, scale_factor=value, mode="bilinear", align_corners=False)
        x = pad_to_stride(small)
    with torch.no_grad():
        heat = coarse_scores(fit.net.coarse, x)
        out = refine_heat(fit.net.rnn, x, heat, fit.params.iterations)
    if kind == "scale":
        sh, sw = small.shape[-2:]
        out = F.interpolate(out[:, :, :sh, :sw], size=(h, w), mode="bilinear", align_corners=False)
    return class_argmax(out[0, :, : fit.h, : fit.w]).long().cpu()


def stability_line(fit: CorrectionFit, reference: torch.Tensor, strength: str) -> str:
    """Per anchored class, the share of anchors whose class every perturbation of the
    ``strength`` set keeps, and how many of those and of the others the reference says are
    wrong."""
    base = fit.base.cpu()
    stable = torch.ones_like(base, dtype=torch.bool)
    for how in PERTURBATIONS[strength]:
        stable &= perturbed_classes(fit, how) == base
    parts = []
    for c in torch.unique(base[fit.anchor]).tolist():
        ac = fit.anchor & (base == c)
        st, un = ac & stable, ac & ~stable
        wr = [
            f"{100 * float((reference[m] != c).float().mean()):.1f}" if m.any() else "-"
            for m in (st, un)
        ]
        parts.append(
            f"class {c}: {100 * float(st.sum()) / max(1, int(ac.sum())):.0f} % stable, "
            f"wrong {wr[0]} % of stable, {wr[1]} % of unstable"
        )
    return "stability: " + "; ".join(parts)


class MeasuredFit(CorrectionFit):
    """A CorrectionFit whose tile carries ``reference``: prints ``anchor_line`` when made."""

    def __init__(self, net, tile, params, device, agree=None):  # type: ignore[no-untyped-def]
        super().__init__(net, tile, params, device, agree)
        self.reference: torch.Tensor = tile.reference
        print(anchor_line(self, self.reference))
        if STABILITY["set"]:
            print(stability_line(self, self.reference, STABILITY["set"]))


class OracleFit(MeasuredFit):
    """... that learns its anchors' labels from the reference (the same anchor pixels)."""

    def targets(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        base = self.base
        self.base = self.reference.to(base.device)  # targets reads the anchors' labels here
        try:
            return super().targets(labels)
        finally:
            self.base = base


class TeacherFit(MeasuredFit):
    """... whose anchors on one half of the image (``tile.teacher`` >= 0: by default the
    right half, the study's scored one) take another map's classes instead of the base
    model's; the other half's as the product labels them."""

    def __init__(self, net, tile, params, device, agree=None):  # type: ignore[no-untyped-def]
        super().__init__(net, tile, params, device, agree)
        self.teacher: torch.Tensor = tile.teacher
        right = self.anchor & (self.teacher >= 0)
        wrong = (
            float((self.teacher[right] != self.reference[right]).float().mean())
            if right.any()
            else 0.0
        )
        print(f"teacher: {int(right.sum())} anchors, {100 * wrong:.1f} % wrong")

    def targets(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        base = self.base
        taught = torch.where(self.teacher >= 0, self.teacher.to(base.device), base)
        self.base = taught  # targets reads the anchors' labels here
        try:
            return super().targets(labels)
        finally:
            self.base = base


class PartnerFit(MeasuredFit):
    """... whose anchors hold only where another model's refined map (``tile.teacher``,
    the whole image: a second model the product could run on the user's image) gives
    the base model's class: two models that read the imagery differently agreeing on a
    pixel they are unlikely to both get wrong. Nothing here reads the reference but the
    printed line."""

    def __init__(self, net, tile, params, device, agree=None):  # type: ignore[no-untyped-def]
        super().__init__(net, tile, params, device, agree)
        partner = tile.teacher.to(self.anchor.device)
        agree = self.anchor & (partner == self.base.to(partner.device))
        parts = [f"partner keeps {int(agree.sum())} of {int(self.anchor.sum())} anchors"]
        for c in torch.unique(self.base[self.anchor]).tolist():
            kept = agree & (self.base == c)
            dropped = self.anchor & ~agree & (self.base == c)
            ref = self.reference
            parts.append(
                f"class {c}: kept {int(kept.sum())}, "
                f"{100 * float((ref[kept] != c).float().mean()) if kept.any() else 0:.1f} % "
                f"wrong; dropped {int(dropped.sum())}, "
                f"{100 * float((ref[dropped] != c).float().mean()) if dropped.any() else 0:.1f}"
                " % wrong"
            )
        drawn = self.labels != IGNORE
        if drawn.any():
            lab = self.labels[drawn]
            on = partner[drawn.to(partner.device)].to(lab.device)
            base = self.base[drawn.to(self.base.device)].to(lab.device)
            right = 100 * float((on == lab).float().mean())
            parts.append(
                f"drawn {int(drawn.sum())} px: partner right on {right:.1f} %, "
                f"base on {100 * float((base == lab).float().mean()):.1f} %"
            )
        print("; ".join(parts))
        self.anchor = agree


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "out" / "corrections")
    ap.add_argument("--model", type=Path, default=None, help="the starting model (bundled)")
    ap.add_argument("--scenes", default=None)
    ap.add_argument("--ks", default="4,16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", default="rows_anchor_oracle.jsonl", help="file name in --out-dir")
    ap.add_argument(
        "--measure-only",
        action="store_true",
        help="anchors as the product labels them; only print how many are wrong",
    )
    ap.add_argument(
        "--stability", choices=sorted(PERTURBATIONS), default="", help="also print stability_line"
    )
    ap.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="anchors on the right half labelled by this model's refined map (not the "
        "reference): what anchors from a model that knows the imagery better would give; "
        "'reference': by the reference itself (with --teacher-half left: the user's "
        "confirming the map where they work)",
    )
    ap.add_argument("--teacher-half", choices=("right", "left"), default="right")
    ap.add_argument(
        "--partner",
        type=Path,
        default=None,
        help="anchors only where this model's refined map of the whole image agrees with "
        "the base model's (PartnerFit): a second opinion the product could compute",
    )
    ap.add_argument("--set", action="append", default=[], help="FIELD=VALUE of FitParams")
    a = ap.parse_args(argv)
    STABILITY["set"] = a.stability
    _HALF["teacher"] = "both" if a.partner else a.teacher_half
    ft.load_corrections = _with_reference(ft.load_corrections)
    fit_kind = (
        PartnerFit
        if a.partner
        else TeacherFit
        if a.teacher
        else (MeasuredFit if a.measure_only else OracleFit)
    )
    ft.CorrectionFit = fit_kind  # type: ignore[misc]
    all_scenes = scenes(a.data, a.out_dir / "data")
    for name in a.scenes.split(",") if a.scenes else list(all_scenes):
        _REFERENCE["path"] = all_scenes[name].reference
        print(name)
        with tempfile.TemporaryDirectory(dir=a.out_dir) as work:
            if a.teacher and str(a.teacher) == "reference":
                _REFERENCE["teacher"] = all_scenes[name].reference
            elif a.teacher or a.partner:
                _REFERENCE["teacher"] = Path(work) / "teacher.tif"
                refine(all_scenes[name].image, _REFERENCE["teacher"], a.partner or a.teacher)
            run_scene(
                all_scenes[name],
                ["largest"],
                [int(k) for k in a.ks.split(",")],
                ["head+rnn"],
                a.out_dir / a.rows,
                Path(work),
                a.model,
                # with --partner the probe's own agreement, not the product's as well
                {
                    "seed": a.seed,
                    **({"anchor_partner": ""} if a.partner else {}),
                    **parse_overrides(a.set),
                },
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
