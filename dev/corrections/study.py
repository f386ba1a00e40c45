"""Run the correction-loop study: every scene, user, K and fine-tune variant.

For each scene the bundled model refines the image; a simulated user
(users.py) draws K corrections on the left half; the model is fine-tuned on
them exactly as ``map-refiner finetune IMAGE CORR.gpkg --class-field class
--mode sparse`` does, the image is refined again with the new model, and the
right half, which nobody drew on, is scored against the reference. Rows are
appended to a JSON-lines file as they finish, so a run can be resumed.

    python -m map_refiner.dev.corrections.study [--scenes a,b] [--users largest]
        [--ks 1,4,16] [--variants rnn,head+rnn]
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch
from osgeo import gdal

from ...engine.modelfile.config import ModelConfig
from ...engine.modelfile.header import DEFAULT_MODEL_PATH
from ...engine.modelfile.io import load_model, save_model
from ...engine.networks.models import MapRefinerNet
from ...engine.refine.pipeline import RefineParams, refine_raster
from ...engine.refine.uncertainty import uncertainty
from ...training.corrections.finetune import finetune, flip_allowance, partner_flip_drops
from ...training.corrections.fit import FitParams
from ...training.tile import LabelSource
from ..provenance import git_state
from .scenes import Scene, scenes
from .users import (
    MIN_PIXELS,
    SWEEP_PAD_M,
    SWEEP_WRONG_AT_LEAST,
    USERS,
    disagreement,
    drawn_as,
    error_regions,
    ordered,
    reviewed,
    snapped_to_edges,
    swept,
    write_corrections,
)
from .verdicts import carved, load_verdicts, model_sha, roof_areas

gdal.UseExceptions()
ROOT = Path(__file__).resolve().parents[2]
OUTLINED = {"clicked_outlined", "clicked_outlined05"}  # session 42: outlined by hand
#: The fine-tunes compared: the shipped one (the RNN and the coarse CNN's last
#: layer) and the paper's RNN-only fine-tune, with the same safeguards. Both run as
#: the product does, with its CPU step count, so a row says what a user gets; the
#: outcome does not depend on the machine's load (the time in a row does).
#: The flip check is applied after the fit from the ratio it records (a dropped fit
#: leaves the base networks, whose undrawn half is the starting map), so that a row
#: also says what a dropped fit would have done; so is the one-class fit's erased-class
#: check (class_kept_at_least, report.rederive).
_RECORD = {"flip_per_score": float("inf"), "class_kept_at_least": 0.0}
VARIANTS: dict[str, FitParams] = {
    "head+rnn": FitParams(adapt="head+rnn", **_RECORD),
    "rnn": FitParams(adapt="rnn", **_RECORD),
    # the CNN's third layer trained too (session 29; not a default variant)
    "deep+rnn": FitParams(adapt="deep+rnn", **_RECORD),
    "deeper+rnn": FitParams(adapt="deeper+rnn", **_RECORD),
    # the input's per-band scale and shift learnt too (session 30; not a default variant)
    "norm+head+rnn": FitParams(adapt="norm+head+rnn", **_RECORD),
}
COMMIT = git_state(untracked=False)["commit"]
#: The dialog's "where to draw next" cells are 12 m across.
CELL_M = 12.0


def refine(
    image: Path, out: Path, model: Path | None = None, detail_iterations: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Building mask and class probabilities of a refine through the product's path
    (``detail_iterations``: RefineParams', None the model's own)."""
    scores = out.with_name(out.stem + "_scores.tif")
    refine_raster(
        RefineParams(
            image=image,
            out=out,
            model_path=model,
            scores=scores,
            device="cpu",
            overwrite=True,
            detail_iterations=detail_iterations,
        )
    )
    return building_mask(out), gdal.Open(str(scores)).ReadAsArray()


def partner_of(
    net: MapRefinerNet, config: ModelConfig, overrides: dict | None, required: bool = True
) -> Path | None:
    """The model the disagreement user's list asks: the fit's anchor partner (a model file
    in ``overrides``, else the bundled one partner.partner_for picks for the base model
    ``net``, ``config``)."""
    from ...training.corrections.partner import partner_for

    named = (overrides or {}).get("anchor_partner", "bundled")
    if named and named != "bundled":
        return Path(str(named))
    found = partner_for(net, config)
    if found is None and required:
        raise SystemExit("the disagreement user needs a partner: pass --set anchor_partner=MODEL")
    return found


def run_scene_in(out_dir: Path, scene: Scene, *args, **kwargs) -> None:
    """``run_scene(scene, ...)`` with a temporary work folder under ``out_dir``, removed
    afterwards (``args``: run_scene's users, ks, variants and rows; ``kwargs``: the rest)."""
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        run_scene(scene, *args, work=Path(work), **kwargs)


def building_mask(class_map: Path) -> np.ndarray:
    """Where a refine's class map holds the class named building."""
    ds = gdal.Open(str(class_map))
    band = ds.GetRasterBand(1)
    band.GetDescription()  # GDAL 3.6: category names appear once PAM is loaded
    names = [n.lower() for n in band.GetCategoryNames()]
    return band.ReadAsArray() == names.index("building")


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    union = (pred | ref).sum()
    return float((pred & ref).sum() / union) if union else 1.0


def judged_scores(maps: dict[str, np.ndarray], ref: np.ndarray, scored: np.ndarray) -> dict:
    """``<name>_judged``: each map's building IoU of the right half over the pixels
    ``scored`` (a mask of the right half: the judged study leaves a person's ``roof``
    regions out, verdicts.py)."""
    half = ref.shape[1] - scored.shape[1]
    truth = ref[:, half:][scored]
    return {
        f"{name}_judged": round(100 * iou(m[:, half:][scored], truth), 2)
        for name, m in maps.items()
    }


def judged_roofs(
    scene: Scene,
    pred: np.ndarray,
    ref: np.ndarray,
    work: Path,
    base_model: Path | None,
    verdicts: Path | None,
    verdict_areas: Path | None,
) -> np.ndarray | None:
    """The image's pixels a person judged roofs the reference lacks (verdicts.roof_areas),
    from this map's own regions (``verdicts``: the base model's map was judged) or from the
    judged bundled models' maps, refined here (``verdict_areas``); None without either."""
    if verdicts is not None:
        flag, rows = "--verdicts", load_verdicts(verdicts)
        maps = {model_sha(base_model or DEFAULT_MODEL_PATH): pred}
    elif verdict_areas is not None:
        flag, rows = "--verdict-areas", load_verdicts(verdict_areas)
        maps = {}
        for name in sorted({v["model"] for v in rows if v["scene"] == scene.name}):
            path = DEFAULT_MODEL_PATH.with_name(f"{name}.safetensors")
            if path.exists():
                maps[model_sha(path)] = refine(scene.image, work / f"judged_{name}.tif", path)[0]
    else:
        return None
    try:
        return roof_areas(rows, scene.name, maps, ref)
    except ValueError as exc:
        raise SystemExit(f"{flag}: {exc}") from exc


def _background_px(regions: list) -> int:
    """The pixels of the background corrections among ``regions`` ((size, (mask, class)))."""
    return sum(int(m.sum()) for _, (m, c) in regions if c == 0)


def accuracy(pred: np.ndarray, ref: np.ndarray) -> float:
    """Share of pixels whose building/background call matches the reference."""
    return float((pred == ref).mean())


def done_rows(path: Path) -> set:
    if not path.exists():
        return set()
    return {
        (r["scene"], r["user"], r["k"], r["variant"])
        for r in map(json.loads, path.read_text().splitlines())
        if r
    }


def run_scene(
    scene: Scene,
    users: Sequence[str],
    ks: Sequence[int],
    variants: Sequence[str],
    rows: Path,
    work: Path,
    base_model: Path | None = None,
    overrides: dict[str, float] | None = None,
    keep_corrections: Path | None = None,
    keep_maps: Path | None = None,
    fit_from: Path | None = None,
    drawing: str = "traced",
    temperatures: Sequence[float] = (),
    keep_models: Path | None = None,
    keep_dropped: bool = False,
    verdicts: Path | None = None,
    verdict_areas: Path | None = None,
) -> None:
    """``verdicts``: a person's verdicts on this map's error regions (verdicts.py): the
    user leaves the left half's regions judged ``roof`` (a building the reference lacks)
    undrawn and draws the next errors instead, and each row also scores the right half
    without its ``roof`` regions (``before_judged``, ``after_judged``, ``after_fit_judged``);
    ``verdict_areas``: the same verdicts taken as areas of the image, for a model nobody
    judged: the judged maps' ``roof`` pixels (verdicts.roof_areas) are carved out of the
    user's background corrections and left out of the judged score;
    ``keep_models``: each adopted fit's model file copied there as
    ``<scene>_<user>_<k>_<variant>_seed<S>.safetensors`` (with its JSON), for probes that
    refine the fitted networks again another way (dev/detail/rule_probe.py); with
    ``keep_dropped``, the fits the product's flip check drops go to ``<keep_models>_dropped``
    (dev/corrections/changes_probe.py measures what they would do);
    ``temperatures``: an adopted fit's map also made with each of these detail
    temperatures (0: no detail pass), row field ``after_by_temperature``; ``fit_from``:
    fine-tune that model instead of ``base_model`` on the polygons drawn on
    ``base_model``'s errors (a user who refined with one model and fits another);
    ``drawing``: how the user draws each error (users.drawn_as)."""
    done = done_rows(rows)
    base_net, base_config = load_model(base_model, "cpu")
    base_name = base_config.name
    ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
    half = ref.shape[1] // 2
    pred, probs = refine(scene.image, work / "base.tif", base_model)
    before = iou(pred[:, half:], ref[:, half:])
    like = gdal.Open(str(scene.image))
    cell = cell_px(scene, like)
    seed = int((overrides or {}).get("seed", 0))
    regions = error_regions(pred, ref, half)
    scored = np.ones((ref.shape[0], ref.shape[1] - half), dtype=bool)  # the judged score's pixels
    skipped = 0
    areas = judged_roofs(scene, pred, ref, work, base_model, verdicts, verdict_areas)
    if areas is not None:  # roofs the reference lacks: not painted as background, not scored
        kept = carved(regions, areas, MIN_PIXELS)
        if verdicts is not None:  # this map's own regions: how many the user leaves undrawn
            skipped = len(regions) - len(kept)
        else:  # another map's roofs: how many background pixels they take out
            skipped = _background_px(regions) - _background_px(kept)
        regions = kept
        scored = ~areas[:, half:]
    judged_by = verdicts if verdicts is not None else verdict_areas  # rows' *_judged fields
    signals: dict[str, np.ndarray] = {}  # the lists of the users who ask the partner
    partner = partner_of(base_net, base_config, overrides, required=False)
    other = None if partner is None else refine(scene.image, work / "partner.tif", partner)[1]
    if {"disagreement", "either", "interleave"} & set(users):
        if other is None:
            raise SystemExit(
                "the disagreement user needs a partner: pass --set anchor_partner=MODEL"
            )
        signals["disagreement"] = disagreement(probs, other)
        signals["either"] = np.maximum(uncertainty(probs), signals["disagreement"])
        signals["interleave"] = signals["disagreement"]
    drags: dict[str, list[list]] = {}  # users who turn a round's changes back, per drag
    turning = {"turned", "swept", "swept_wrong", "reviewed", "clicked", "clicked_whole"}
    if (turning | {"clicked_trimmed"} | OUTLINED) & set(users):  # turn changes back
        wrong, parent_map = turned_regions(scene, base_model, work, pred, ref, half)
        largest = ordered(wrong, "largest", probs, half, cell)
        pad = int(round(SWEEP_PAD_M / pixel_m(scene, like)))
        # session 40: each wrong change clicked; session 41: a rectangle dragged over each
        drags = {
            "turned": [[c] for c in largest],
            "swept": swept(largest, pred, parent_map, half, pad),
            "swept_wrong": swept(largest, pred, parent_map, half, pad, ref, SWEEP_WRONG_AT_LEAST),
        }
        if "reviewed" in users:  # session 42: the dock's list of the round's largest changes
            drags["reviewed"] = reviewed(review_list(base_model, work, half), pred, ref, like)
        if ({"clicked", "clicked_whole", "clicked_trimmed"} | OUTLINED) & set(users):
            every = review_list(base_model, work, half, top=10**6)
            drags["clicked"] = reviewed(every, pred, ref, like)
            drags["clicked_whole"] = reviewed(every, pred, ref, like, parent=parent_map, half=half)
            drags["clicked_trimmed"] = reviewed(every, pred, ref, like, trimmed=True)
            for user, metres in (("clicked_outlined", 1.0), ("clicked_outlined05", 0.5)):
                rough = metres / pixel_m(scene, like)  # a hand's outline, this far either way
                drags[user] = reviewed(
                    every, pred, ref, like, trimmed=True, rough_px=rough, seed=seed
                )
    for user in users:
        if user in drags:  # the largest first, as the changes layer shows them
            per_k = {k: [c for drag in drags[user][:k] for c in drag] for k in ks}
        else:
            order = ordered(regions, user, probs, half, cell, signal=signals.get(user))
            per_k = {k: order[:k] for k in ks}
        for k in ks:
            style, _, snap = drawing.partition("+")
            drawn = drawn_as(per_k[k], style, pixel_m(scene, like), half, seed, scene.image)
            if snap == "snap" and drawn:  # session 33's experiment: outlines snapped
                image = like.ReadAsArray()[:3].astype(np.float32)
                drawn = snapped_to_edges(drawn, image, pixel_m(scene, like), half)
            if not drawn:
                continue
            gpkg = write_corrections(drawn, like, work / f"{user}_{k}.gpkg")
            if keep_corrections is not None:  # for a desktop session or a CLI round
                keep_corrections.mkdir(parents=True, exist_ok=True)
                shutil.copy(gpkg, keep_corrections / f"{scene.name}_{user}_{k}.gpkg")
            for variant in variants:
                if (scene.name, user, k, variant) in done:
                    continue
                model = work / f"{user}_{k}_{variant}.safetensors"
                t0 = time.perf_counter()
                res = finetune(
                    scene.image,
                    LabelSource(gpkg, class_field="class", mode="sparse"),
                    model,
                    base_model=fit_from or base_model,
                    params=replace(  # the held-out diagnostic's time counts in finetune_s
                        VARIANTS[variant], record_detail_held_out=True, **(overrides or {})
                    ),
                    device="cpu",
                    overwrite=True,
                )
                seconds = time.perf_counter() - t0
                fitted, fitted_probs = refine(scene.image, work / "after.tif", model)
                dropped = flip_dropped(
                    res.adopted,
                    res.flip_ratio,
                    res.tuned_score,
                    res.sure_ratio,
                    overrides,
                    res.partner_agreement,
                    res.partner_flip_ratio,
                )
                after = _burned(pred, drawn) if dropped else fitted
                pixels = sum(int(m.sum()) for m, _ in drawn)
                honoured = sum(int((after[m] == bool(c)).sum()) for m, c in drawn) / max(1, pixels)
                row = {
                    "model": base_name,
                    "base_model": str(base_model) if base_model else None,
                    "fit_from": str(fit_from) if fit_from else None,
                    "overrides": overrides or {},
                    "scene": scene.name,
                    "user": user,
                    "drawing": drawing,
                    "k": k,
                    "variant": variant,
                    "drawn": len(drawn),
                    "classes": [int(c) for _, c in drawn],
                    "before": round(100 * before, 2),
                    **(
                        {"verdicts": str(judged_by), "skipped_roofs": skipped}
                        | judged_scores(
                            {"before": pred, "after": after, "after_fit": fitted}, ref, scored
                        )
                        if judged_by is not None
                        else {}
                    ),
                    "after": round(100 * iou(after[:, half:], ref[:, half:]), 2),
                    "after_fit": round(100 * iou(fitted[:, half:], ref[:, half:]), 2),
                    "acc_before": round(100 * accuracy(pred[:, half:], ref[:, half:]), 2),
                    "acc_after": round(100 * accuracy(after[:, half:], ref[:, half:]), 2),
                    "acc_after_fit": round(100 * accuracy(fitted[:, half:], ref[:, half:]), 2),
                    "honoured": round(100 * honoured, 2),
                    # what the user sees without a reference: the share of the image the
                    # map calls building before and after the fit, and the share it changes
                    "share_before": round(100 * float(pred.mean()), 2),
                    "share_fit": round(100 * float(fitted.mean()), 2),
                    "changed_fit": round(100 * float((fitted != pred).mean()), 2),
                    # the undrawn half split in two, for a user who looks at one part of
                    # the map and is scored on the other (looking_user.py): building IoU
                    # of its top and bottom quarters, starting and fitted maps
                    **quarters(pred, fitted, ref, half),
                    # what the fit changed of the starting map's sure pixels over the whole
                    # image, away from the drawn polygons (a check a round could run)
                    **whole_image_changes(probs, fitted_probs, drawn, other),
                    "adopted": res.adopted and not dropped,
                    "passed_held_out": res.adopted,
                    "held_out": res.held_out,
                    "base_score": res.base_score,
                    "tuned_score": res.tuned_score,
                    "flip_ratio": res.flip_ratio,
                    "anchor_confidence": res.anchor_confidence,
                    "anchor_weight": res.anchor_weight,
                    "partner_agreement": res.partner_agreement,
                    "partner_flip_ratio": res.partner_flip_ratio,
                    "one_class_agreement": res.one_class_agreement,
                    "fit_agreement": res.fit_agreement,
                    "detail_held_out": res.detail_held_out,
                    "class_kept": None if res.class_kept is None else res.class_kept[1],
                    "class_kept_name": None if res.class_kept is None else res.class_kept[0],
                    "sure_ratio": res.sure_ratio,
                    "steps": res.steps,
                    "held_out_curve": [[n, round(v, 4)] for n, v in res.held_out_curve],
                    # the detail stage (None: it did not run; see dropped rows' caveat
                    # in docs/results_corrections.md "Session 13")
                    "detail_adopted": None if res.detail is None else res.detail.adopted,
                    "detail_base_score": None if res.detail is None else res.detail.base_score,
                    "detail_tuned_score": None if res.detail is None else res.detail.tuned_score,
                    "detail_temperature": load_model(model, "cpu")[1].detail_temperature,
                    "finetune_s": round(seconds, 1),
                    "commit": COMMIT,
                }
                if temperatures:
                    row["after_by_temperature"] = (
                        by_temperature(scene.image, model, work, ref, half, temperatures)
                        if row["adopted"]
                        else None
                    )
                if keep_maps is not None:  # for studies of the maps a check could see
                    save_maps(keep_maps, row, pred, fitted, drawn)
                if keep_models is not None and row["adopted"]:
                    keep_model(keep_models, row, model)
                elif keep_models is not None and keep_dropped and dropped:
                    # a fit the flip check drops, beside: what it would do if adopted
                    keep_model(keep_models.with_name(keep_models.name + "_dropped"), row, model)
                append_row(rows, row)


def turned_regions(
    scene: Scene,
    round_model: Path | None,
    work: Path,
    pred: np.ndarray,
    ref: np.ndarray,
    half: int,
) -> tuple[list, np.ndarray]:
    """The left half's wrong changes of a gated round's map (``pred``, of ``round_model``)
    against its gate parent's map, as error regions (size, correction of the class the
    reference gives, which the parent's map had): what a user who turns back the changes
    layer's wrong changes (ui/turn_back.py) draws, each wrong part traced; and the gate
    parent's building map."""
    if round_model is None:
        raise SystemExit("the turned user needs --model, a gated round")
    net, config = load_model(round_model, "cpu")
    if net.gate_parent is None or not config.gate_parent:
        raise SystemExit(f"{round_model} holds no gate parent: the turned user needs one")
    parent = work / "gate_parent.safetensors"
    save_model(net.gate_parent, ModelConfig.from_dict(config.gate_parent), parent)
    before = refine(scene.image, work / "gate_parent.tif", parent)[0]
    return error_regions(np.where(pred != before, pred, ref), ref, half), before


def review_list(round_model: Path, work: Path, half: int, top: int | None = None) -> list:
    """The iterations dock's review list after a round (session 42): the round's map
    (``work/base.tif``) against its gate parent's (``work/gate_parent.tif``, from
    turned_regions) as the plugin writes the changes layer (engine map_changes, the
    round's kept polygons left out), its right half blanked (the user draws on the left
    only), listed by engine largest_changes (its first ``top``; the product's by default)."""
    from ...engine.scoring.changes import drawn_by, map_changes
    from ...engine.scoring.turn_back import largest_changes

    out, parent = work / "changes.tif", work / "gate_parent.tif"
    map_changes(
        parent,
        work / "base.tif",
        out,
        overwrite=True,
        drawn=drawn_by(round_model, work / "base.tif"),
    )
    ds = gdal.Open(str(out), gdal.GA_Update)
    blank = np.zeros((ds.RasterYSize, ds.RasterXSize - half), np.uint8)
    ds.GetRasterBand(1).WriteArray(blank, half, 0)
    ds = None
    return largest_changes(out, parent) if top is None else largest_changes(out, parent, top=top)


def flip_dropped(
    passed: bool,
    flip_ratio: float | None,
    tuned_score: float | None,
    sure_ratio: float | None,
    overrides: dict | None = None,
    partner_agreement: float | None = None,
    partner_flip_ratio: float | None = None,
) -> bool:
    """Whether the product's flip check drops a fit the study ran without it (_RECORD),
    judged with the study's FitParams overrides (``--set flip_sure_ratio=0.85`` is the
    fine-tune's rule in that study; until session 36 the study judged with the defaults).
    A round the partner judged (``partner_flip_ratio`` recorded) is judged with the
    partner's agreement as its score (FitParams.partner_flip_check, session 53)."""
    keys = ("flip_per_score", "flip_sure_ratio", "partner_flip_check")
    judge = FitParams(**{k: v for k, v in (overrides or {}).items() if k in keys})
    if partner_flip_ratio is not None:
        return passed and partner_flip_drops(
            partner_agreement, partner_flip_ratio, judge.flip_per_score, judge.partner_flip_check
        )
    allowance = flip_allowance(tuned_score, sure_ratio, judge.flip_per_score, judge.flip_sure_ratio)
    return passed and (flip_ratio or 0.0) > allowance


def append_row(rows: Path, row: dict) -> None:
    """``row`` appended to the JSON-lines file ``rows`` (made with its folder when new)
    and printed, so a run can be followed and resumed."""
    rows.parent.mkdir(parents=True, exist_ok=True)
    with rows.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def save_maps(folder: Path, row: dict, pred: np.ndarray, fitted: np.ndarray, drawn: list) -> Path:
    """The round's starting and fitted building maps (bit-packed) and the drawn polygons
    (0 none, 1 background, 2 building) as ``<scene>_<user>_<k>_<variant>_seed<S>.npz``."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.zeros(pred.shape, np.uint8)
    for m, c in drawn:
        labels[m] = 2 if c else 1
    out = folder / f"{round_name(row)}.npz"
    np.savez_compressed(
        out,
        shape=np.array(pred.shape),
        pred=np.packbits(pred),
        fitted=np.packbits(fitted),
        drawn=labels,
        row=json.dumps(row),
    )
    return out


def round_name(row: dict) -> str:
    """A round's file name stem: ``<scene>_<user>_<k>_<variant>_seed<S>``."""
    seed = int(row["overrides"].get("seed", 0))
    return f"{row['scene']}_{row['user']}_{row['k']}_{row['variant']}_seed{seed}"


def keep_model(folder: Path, row: dict, model: Path) -> Path:
    """The round's fitted model file and its JSON config copied into ``folder`` as
    ``<scene>_<user>_<k>_<variant>_seed<S>.safetensors`` (and ``.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{round_name(row)}.safetensors"
    shutil.copy(model, out)
    shutil.copy(model.with_suffix(".json"), out.with_suffix(".json"))
    return out


def quarters(pred: np.ndarray, fitted: np.ndarray, ref: np.ndarray, half: int) -> dict:
    """Building IoU of the starting and fitted maps on the undrawn half's top and bottom
    quarters of the image."""
    mid = ref.shape[0] // 2
    out = {}
    for name, rows in (("top", slice(0, mid)), ("bottom", slice(mid, None))):
        for key, m in (("before", pred), ("fit", fitted)):
            out[f"{name}_{key}"] = round(100 * iou(m[rows, half:], ref[rows, half:]), 2)
    return out


def whole_image_changes(
    probs: np.ndarray, fitted_probs: np.ndarray, drawn: list, partner: np.ndarray | None
) -> dict:
    """How much of the starting map's sure pixels (p >= 0.9) the fit changes over the
    whole image, away from the drawn polygons: the share flipped, that share over the
    drawn share of the image, the sure building pixels made background and the sure
    background made building; with a partner's probabilities, the same on the sure
    pixels the partner agrees with (``_partner`` fields)."""
    base, new = probs.argmax(0), fitted_probs.argmax(0)
    undrawn = np.ones(base.shape, bool)
    for m, _ in drawn:
        undrawn &= ~m
    drawn_share = 1.0 - float(undrawn.mean())
    sure = (probs.max(0) >= 0.9) & undrawn
    out: dict[str, float | None] = {}
    groups = [("", sure)]
    if partner is not None:
        groups.append(("_partner", sure & (partner.argmax(0) == base)))
    for tag, where in groups:
        n = int(where.sum())
        flipped = float((where & (new != base)).sum()) / max(1, n)
        out[f"whole_flip{tag}"] = round(flipped, 5)
        out[f"whole_flip_per_drawn{tag}"] = round(flipped / drawn_share, 4) if drawn_share else None
        for name, c in (("erased", 1), ("added", 0)):
            had = where & (base == c)
            out[f"whole_{name}{tag}"] = round(
                float((had & (new != c)).sum()) / max(1, int(had.sum())), 5
            )
    return out


def by_temperature(
    image: Path, model: Path, work: Path, ref: np.ndarray, half: int, temperatures: Sequence[float]
) -> dict[str, float] | None:
    """Building IoU of the undrawn half refined by the fitted ``model`` with each detail
    temperature (0: the detail pass off), by temperature; None for a model without a
    detail pass."""
    net, config = load_model(model, "cpu")
    if net.detail_rnn is None or config.detail_iterations <= 0:
        return None
    out = {}
    for t in temperatures:
        if t <= 0:
            fitted, _ = refine(image, work / "after_t.tif", model, detail_iterations=0)
        else:
            fitted, _ = refine(image, work / "after_t.tif", detail_variant(model, work, t))
        out[f"{t:g}"] = round(100 * iou(fitted[:, half:], ref[:, half:]), 2)
    return out


def detail_variant(
    model: Path | None,
    work: Path,
    temperature: float | None = None,
    detail_rnn: torch.nn.Module | None = None,
) -> Path:
    """A copy of ``model`` (None: the bundled one) in ``work`` whose detail pass divides by
    ``temperature`` and runs ``detail_rnn`` (None: the model's own), to refine again."""
    net, config = load_model(model, "cpu")
    if temperature is not None:
        config.detail_temperature = float(temperature)
    if detail_rnn is not None:
        net.detail_rnn = copy.deepcopy(detail_rnn)
    return save_model(net, config, work / "detail_variant.safetensors", overwrite=True)


def _burned(pred: np.ndarray, drawn: list) -> np.ndarray:
    """The starting map with the drawn polygons shown: what a refine with a model whose
    fit was dropped gives (the base networks and the kept polygons)."""
    out = pred.copy()
    for m, c in drawn:
        out[m] = bool(c)
    return out


def cell_px(scene: Scene, like: gdal.Dataset) -> int:
    """The dialog's "where to draw next" cell (CELL_M) in the scene's pixels."""
    return max(8, int(round(CELL_M / pixel_m(scene, like))))


def pixel_m(scene: Scene, like: gdal.Dataset) -> float:
    """The scene's pixel size in metres; the PNG scenes carry a nominal resolution in
    their geotransform."""
    if scene.name.startswith(("isprs", "loveda")):
        return abs(like.GetGeoTransform()[1])
    return _ground_m(scene.image)


def _ground_m(image: Path) -> float:
    from ...engine.rasters.read import ground_resolution, open_raster, raster_info

    return ground_resolution(raster_info(open_raster(image)))[0]


def parse_overrides(items: Sequence[str]) -> dict[str, float]:
    """``FIELD=VALUE`` pairs for FitParams fields (numbers, or a string field as is)."""
    known = {f.name: f for f in fields(FitParams)}
    out: dict = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in known:
            raise SystemExit(f"--set: FitParams has no field {name!r}")
        try:
            out[name] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            out[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out-dir", type=Path, default=ROOT / "out" / "corrections")
    ap.add_argument("--scenes", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--users", default="largest")
    ap.add_argument("--ks", default="1,4,16")
    ap.add_argument("--variants", default="head+rnn,rnn")
    ap.add_argument(
        "--model", type=Path, default=None, help="base model (default: the bundled one)"
    )
    ap.add_argument("--rows", default="rows.jsonl", help="rows file name in --out-dir")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a FitParams field for every variant (repeatable)",
    )
    ap.add_argument(
        "--keep-corrections",
        type=Path,
        help="also copy each round's drawn polygons here as <scene>_<user>_<k>.gpkg",
    )
    ap.add_argument(
        "--keep-maps",
        type=Path,
        help="also save each round's starting and fitted maps and drawn polygons here (save_maps)",
    )
    ap.add_argument(
        "--fit-from",
        type=Path,
        help="fine-tune this model on the polygons drawn on --model's errors (default: --model)",
    )
    ap.add_argument(
        "--drawing",
        default="traced",
        help="how the users draw each error: traced (default), rough:D, loose:D, "
        "inside:D or shifted:D (D metres; users.drawn_as), click (users.clicked: outlines "
        "grown from a click, click_outline.py), +snap for outlines then snapped to "
        "the image's edges (shifted:1+snap); name a --rows file of its own",
    )
    ap.add_argument(
        "--temperatures",
        default="",
        help="comma-separated detail temperatures an adopted fit's map is also made with "
        "(0: no detail pass; row field after_by_temperature)",
    )
    ap.add_argument(
        "--keep-models",
        type=Path,
        help="also copy each adopted fit's model file here (keep_model)",
    )
    ap.add_argument(
        "--verdicts",
        type=Path,
        help="a person's verdicts on the base map's error regions (verdicts.py, e.g. "
        "dev/corrections/reference_verdicts.json): roofs the reference lacks are not drawn "
        "as background, and rows also score the right half without them (*_judged)",
    )
    ap.add_argument(
        "--verdict-areas",
        type=Path,
        help="the verdicts' roofs as areas of the image, for a model nobody judged: carved "
        "out of the user's background corrections and left out of the *_judged scores "
        "(skipped_roofs then counts the pixels carved out)",
    )
    ap.add_argument(
        "--keep-dropped",
        action="store_true",
        help="with --keep-models, also the fits the flip check drops, in <DIR>_dropped",
    )
    a = ap.parse_args(argv)
    if a.verdicts is not None and a.verdict_areas is not None:
        raise SystemExit("give --verdicts (this map's regions) or --verdict-areas, not both")
    if a.model is not None and not any(x.startswith("anchor_partner=") for x in a.set):
        print(
            "note: a model of either bundled model's lineage takes the other bundled model's "
            "agreement on its anchors (FitParams.anchor_partner, partner.PARTNERS), and both "
            "have seen every shared scene; for a scene the models must never have seen, pass "
            "--set anchor_partner=MODEL (one trained without it) or --set anchor_partner="
        )
    overrides = parse_overrides(a.set)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    all_scenes = scenes(a.data, a.out_dir / "data")
    names = a.scenes.split(",") if a.scenes else list(all_scenes)
    users = a.users.split(",")
    if any(u not in USERS for u in users):
        raise SystemExit(f"users are {', '.join(USERS)}")
    for name in names:
        run_scene_in(
            a.out_dir,
            all_scenes[name],
            users,
            [int(k) for k in a.ks.split(",")],
            a.variants.split(","),
            a.out_dir / a.rows,
            base_model=a.model,
            overrides=overrides,
            keep_corrections=a.keep_corrections,
            keep_maps=a.keep_maps,
            fit_from=a.fit_from,
            drawing=a.drawing,
            temperatures=[float(t) for t in a.temperatures.split(",") if t],
            keep_models=a.keep_models,
            keep_dropped=a.keep_dropped,
            verdicts=a.verdicts,
            verdict_areas=a.verdict_areas,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
