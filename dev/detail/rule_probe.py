"""Other rules for the detail pass, tried on fitted models a study kept
(``study --keep-models DIR``) or on a starting model: each model refined again through
the product's path with the detail pass changed, and the right half's building IoU
printed per rule, with the rule's sum over the models.

A rule is a ``+``-joined list of:

- ``as_is``: the model as it is (its own detail temperature and rules);
- ``tT``: the detail temperature T instead of the model's (``t2``);
- ``bandB``: the detail pass may change the class only within B metres of the model
  grid map's class outlines (pixels farther from them keep the model grid's scores);
- ``keepT``: the sure-pixel rule (predict.DETAIL_KEEPS_SURE) judged at temperature T
  instead of the detail temperature (``keep2``: a fit's pixels kept as its parent's
  temperature would keep them); ``keepown``: judged at the model's own detail temperature
  (with ``tT``: the scores the detail RNN sees divided by T, the pixels it may change
  those the model's own temperature leaves unsure).

    python -m map_refiner.dev.detail.rule_probe --models 'out/s36/models/own_traced/*.safetensors' \
        --rules as_is,band1,band2,band4 --json out/s36/rules_own_traced.json
    python -m map_refiner.dev.detail.rule_probe --starts --rules as_is,band2 --json J

``--agreement`` also records, without the reference, how far each rule's detail pass
moves the map from the model grid's own (the same model refined with the detail pass
off): per rule ``RULE@agree``, the building IoU (%) of the two maps over the whole image,
and ``RULE@share``, the building share (%) of the rule's map; per model ``off``, the
right half's building IoU with the detail pass off, and ``off@share``. A label-free
signal for choosing a fitted model's detail temperature (session 37).
"""

from __future__ import annotations

import argparse
import glob
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from ...engine.modelfile.header import DEFAULT_MODEL_PATH, read_model_config
from ...engine.modelfile.io import load_model
from ...engine.networks.models import MapRefinerNet
from ...engine.refine import predict
from ..corrections.scenes import scenes
from ..corrections.study import ROOT, detail_variant, iou, refine

#: The shared scenes a starting model is probed on (Rio has no detail pass).
START_SCENES = (
    "austin_dev",
    "austin_enh",
    "kampala_drone",
    "nepal_drone",
    "isprs_potsdam",
    "isprs_vaihingen",
    "loveda_1",
)


#: ``keep`` at the model's own detail temperature (``keepown``).
OWN = -1.0


def parse_rule(rule: str) -> dict[str, float]:
    """``t2+band2`` -> {"t": 2.0, "band": 2.0}; ``as_is`` -> {}."""
    out: dict[str, float] = {}
    for part in rule.split("+"):
        if part == "as_is":
            continue
        if part == "keepown":
            out["keep"] = OWN
            continue
        for key in ("band", "keep", "t"):
            if part.startswith(key):
                out[key] = float(part[len(key) :])
                break
        else:
            raise SystemExit(f"unknown rule part {part!r}")
    return out


def band_mask(classes: torch.Tensor, radius: int) -> torch.Tensor:
    """Pixels within ``radius`` pixels (a square) of a change of class in ``classes``."""
    edge = torch.zeros(classes.shape, dtype=torch.bool, device=classes.device)
    edge[1:, :] |= classes[1:, :] != classes[:-1, :]
    edge[:-1, :] |= classes[1:, :] != classes[:-1, :]
    edge[:, 1:] |= classes[:, 1:] != classes[:, :-1]
    edge[:, :-1] |= classes[:, 1:] != classes[:, :-1]
    if radius <= 0:
        return edge
    grown = F.max_pool2d(edge[None, None].float(), 2 * radius + 1, 1, radius)
    return grown[0, 0] > 0


@contextmanager
def detail_rule(rule: dict[str, float]) -> Iterator[dict[str, float]]:
    """predict's detail pass with ``rule``'s band and keep temperature while inside; yields
    the state the pass fills in for the rule (the fine grid's pixel size ``res_m`` and the
    model's ``temperature``, recorded by each detail pass before its sure-pixel rule)."""
    original_scores, original_keep = predict.detail_scores, predict.keep_sure
    state: dict[str, float] = {}

    def scores(model, config, ds, bands, grids, tile, detail, *rest):
        state["res_m"] = float(min(detail.resolution_m))
        state["temperature"] = float(config.detail_temperature)
        return original_scores(model, config, ds, bands, grids, tile, detail, *rest)

    def keep(start: torch.Tensor, out: torch.Tensor, at_least: float) -> torch.Tensor:
        judged = start
        if "keep" in rule:  # sureness as the keep temperature would see it
            judged = start * (state["temperature"] / rule["keep"])
        sure = torch.softmax(judged.float(), 0).max(0).values >= at_least
        if "band" in rule:
            radius = int(round(rule["band"] / state["res_m"]))
            sure |= ~band_mask(start.argmax(0), radius)
        return torch.where(sure[None], start.to(out.dtype), out)

    predict.detail_scores, predict.keep_sure = scores, keep
    try:
        yield state
    finally:
        predict.detail_scores, predict.keep_sure = original_scores, original_keep


def score(
    image: Path,
    model: Path | None,
    rule: dict[str, float],
    ref,
    work: Path,
    detail_from: MapRefinerNet | None = None,
) -> float:
    """Building IoU (%) of the right half of ``model``'s refine of ``image`` under ``rule``
    (``detail_from``: with that network's detail RNN instead of the model's own)."""
    return right_half_iou(refined(image, model, rule, work, detail_from), ref)


def right_half_iou(pred, ref) -> float:
    half = ref.shape[1] // 2
    return round(100 * iou(pred[:, half:], ref[:, half:]), 2)


def refined(
    image: Path,
    model: Path | None,
    rule: dict[str, float],
    work: Path,
    detail_from: MapRefinerNet | None = None,
):
    """The building mask of ``model``'s refine of ``image`` under ``rule``."""
    if rule.get("keep") == OWN:
        own = read_model_config(model or DEFAULT_MODEL_PATH).detail_temperature
        rule = {**rule, "keep": own}
    if "t" in rule or detail_from is not None:
        donor = None if detail_from is None else detail_from.detail_rnn
        model = detail_variant(model, work, rule.get("t"), donor)
    with detail_rule(rule):
        pred, _ = refine(image, work / "map.tif", model)
    return pred


def agreement_rows(
    row: dict, image: Path, model: Path | None, rules: list[str], ref, work: Path, donor
) -> None:
    """Fill ``row`` with the label-free figures of ``--agreement`` (see the module's
    docstring) for the rules it lacks them for."""
    if all(f"{r}@agree" in row for r in rules) and "off" in row:
        return
    off, _ = refine(image, work / "off.tif", model, detail_iterations=0)
    row["off"] = right_half_iou(off, ref)
    row["off@share"] = round(100 * float(off.mean()), 2)
    for rule in rules:
        if f"{rule}@agree" in row:
            continue
        pred = refined(image, model, parse_rule(rule), work, donor)
        row[f"{rule}@agree"] = round(100 * iou(pred, off), 2)
        row[f"{rule}@share"] = round(100 * float(pred.mean()), 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--models", default=None, help="glob of kept fitted models")
    ap.add_argument("--starts", action="store_true", help="probe the starting --model instead")
    ap.add_argument("--model", type=Path, default=None, help="with --starts (default: bundled)")
    ap.add_argument("--scenes", default=",".join(START_SCENES), help="with --starts")
    ap.add_argument("--rules", default="as_is,band1,band2,band4")
    ap.add_argument(
        "--detail-from",
        type=Path,
        default=None,
        help="every model refined with this model's detail RNN instead of its own "
        "(its temperature kept; the rows' keys get the donor's name)",
    )
    ap.add_argument(
        "--agreement",
        action="store_true",
        help="also record each rule's map against the model grid's own (no reference used)",
    )
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    from osgeo import gdal

    out_dir = ROOT / "out" / "corrections"
    all_scenes = scenes(a.data, out_dir / "data")
    if a.starts:
        jobs = [(name, a.model) for name in a.scenes.split(",")]
    else:
        files = sorted(glob.glob(a.models or ""))
        if not files:
            raise SystemExit(f"no model matches {a.models!r}")
        named = sorted(all_scenes, key=len, reverse=True)  # loveda_1 before loveda
        jobs = [
            (next(n for n in named if Path(f).name.startswith(n + "_")), Path(f)) for f in files
        ]
    rules = a.rules.split(",")
    rows = json.loads(a.json.read_text()) if a.json.exists() else {}
    totals = dict.fromkeys(rules, 0.0)
    donor = None if a.detail_from is None else load_model(a.detail_from, "cpu")[0]
    tag = "" if a.detail_from is None else f"@{a.detail_from.stem}"
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        work = Path(tmp)
        for name, model in jobs:
            scene = all_scenes[name]
            ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
            key = f"{name}:{model.name if model else 'bundled'}{tag}"
            row = rows.setdefault(key, {})
            for rule in rules:
                if rule not in row:
                    row[rule] = score(scene.image, model, parse_rule(rule), ref, work, donor)
                    a.json.write_text(json.dumps(rows, indent=1))
                totals[rule] += row[rule]
            if a.agreement:
                agreement_rows(row, scene.image, model, rules, ref, work, donor)
                a.json.write_text(json.dumps(rows, indent=1))
            shown = [k for k in row if k in rules or (a.agreement and k.split("@")[0] in rules)]
            shown += ["off", "off@share"] if a.agreement else []
            print(key, " ".join(f"{k}={row[k]}" for k in shown), flush=True)
    print("sum", " ".join(f"{r}={v:.1f}" for r, v in totals.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
