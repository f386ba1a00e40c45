"""Many rounds on one image: what a capped gate chain costs the map, and saves in time.

A gated round holds its parent inside (training/corrections/finetune.with_gate), which
holds its own: a refine with round N's model runs N + 1 passes of the networks. This
study runs ``--rounds`` rounds on each scene as a cartographer keeps correcting: each
round the user adds the ``--k`` largest errors of the current map's left half to the
same correction layer (missed buildings traced from the reference, false ones outlined
as background, as the stop check's hook draws), fine-tunes the last round's model
(the bundled model the image chooses first), and refines. Then every round's model is
refined again with its gate chain cut to 1, 2, 3 ... parents (finetune.cut_gate_chain:
the fitted networks do not depend on the chain, only the refine's gating does), and the
right half is scored each time, with the refine's seconds. One JSON row per round and
depth, to ``--rows``.

    python -m map_refiner.dev.corrections.chain_depth --scenes austin_dev,kampala_drone
        [--rounds 6] [--k 4] [--depths 1,2,3] [--work out/s51/chain] [--rows ROWS.jsonl]
        [--verdict-areas dev/corrections/reference_verdicts.json] [--seed N]
        [--from-root | --last-round]

By default each round fine-tunes the last round's model as a user does, which since
session 52 fits the networks the image's first round started from on the whole layer so
far (training/corrections/image_start.py); ``--last-round``: the way before session 52,
each round fitting the last round's networks (a gate chain; session 51's rows);
``--from-root``: each round fine-tunes the root model itself (the one the image chooses),
so a round not adopted shows the root's map, not the last round's (session 52's study).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

from ...engine.modelfile.io import load_model
from ...engine.refine.pipeline import RefineParams, refine_raster
from ...training.corrections.finetune import cut_gate_chain, finetune
from ...training.corrections.fit import FitParams
from ...training.tile import LabelSource
from .scenes import scenes
from .users import write_class_polygons

gdal.UseExceptions()


def _classes(path: Path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.GetRasterBand(1).ReadAsArray()


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    union = (pred | ref).sum()
    return float((pred & ref).sum() / union) if union else 1.0


def largest_errors(
    pred: np.ndarray, ref: np.ndarray, half: int, k: int, roofs: np.ndarray | None = None
) -> list:
    """The ``k`` largest error regions of the left half (mask, class 1 building / 0
    background), missed buildings traced whole from the reference (the hook's user);
    ``roofs``: roofs the reference lacks (verdicts.roof_areas), never drawn as background."""
    from scipy import ndimage

    found = []
    rlab, _ = ndimage.label(ref)
    for err, cls in (((~pred) & ref, 1), (pred & (~ref), 0)):
        err = err.copy()
        err[:, half:] = False
        if roofs is not None and cls == 0:
            err &= ~roofs
        lab, n = ndimage.label(err)
        if not n:
            continue
        sizes = ndimage.sum(err, lab, range(1, n + 1))
        for i in np.argsort(-sizes):
            if sizes[i] < 20:
                break
            region = lab == i + 1
            if cls == 1:
                ids = np.unique(rlab[region])
                region = np.isin(rlab, ids[ids > 0]) & (np.arange(ref.shape[1])[None] < half)
            found.append((float(sizes[i]), region, cls))
    found.sort(key=lambda t: -t[0])
    return [(m, c) for _, m, c in found[:k]]


def refined(image: Path, model: Path | None, out: Path, depth: int | None = None) -> float:
    """Seconds of a refine of ``image`` with ``model`` (None: the bundled model the image
    chooses), its gate chain cut to ``depth`` parents when given."""
    kw: dict = {"choose_model": True} if model is None else {"model_path": model}
    loaded = None
    if depth is not None and model is not None:
        loaded = cut_gate_chain(*load_model(model, "cpu"), depth)
    t0 = time.perf_counter()
    params = RefineParams(image=image, out=out, device="cpu", overwrite=True, **kw)
    refine_raster(params, model=loaded)
    return time.perf_counter() - t0


def run_scene(  # noqa: PLR0913
    scene,  # noqa: ANN001
    rounds: int,
    k: int,
    depths: list[int],
    work: Path,
    rows,  # noqa: ANN001
    verdict_areas: Path | None = None,
    seed: int = 0,
    from_root: bool = False,
    last_round: bool = False,
) -> None:
    work.mkdir(parents=True, exist_ok=True)
    ref = _classes(scene.reference) > 0
    half = ref.shape[1] // 2
    like = gdal.Open(str(scene.image))
    drawn = np.zeros(ref.shape, np.uint8)  # the correction layer: 1 background, 2 building
    model: Path | None = None
    current = work / "round0.tif"
    refined(scene.image, None, current)
    roofs = None
    if verdict_areas is not None:  # the judged user (study --verdict-areas)
        from .study import judged_roofs

        pred0 = _classes(current) == 1
        roofs = judged_roofs(scene, pred0, ref, work, None, None, verdict_areas)
    scored = np.ones(ref[:, half:].shape, bool) if roofs is None else ~roofs[:, half:]

    def score(path: Path) -> tuple[float, float]:
        m = _classes(path)[:, half:] == 1
        return iou(m, ref[:, half:]), iou(m[scored], ref[:, half:][scored])

    start, start_judged = score(current)
    for r in range(1, rounds + 1):
        pred = _classes(current) == 1
        for mask, cls in largest_errors(pred, ref, half, k, roofs):
            drawn[mask] = 2 if cls == 1 else 1
        layer = write_class_polygons(drawn, like, work / f"layer{r}.gpkg")
        out = work / f"round{r}.safetensors"
        res = finetune(
            scene.image,
            LabelSource(layer, class_field="class", mode="sparse"),
            out,
            base_model=None if from_root else model,
            params=FitParams(seed=seed, from_image_start=not last_round),
            device="cpu",
            overwrite=True,
            choose_base=from_root or model is None,
        )
        model = out
        current = work / f"round{r}.tif"
        for depth in [None, *depths]:
            if depth is not None and depth >= r:
                continue  # the chain is no deeper
            path = current if depth is None else work / f"round{r}_depth{depth}.tif"
            seconds = refined(scene.image, model, path, depth)
            now, now_judged = score(path)
            row = {
                "scene": scene.name,
                "seed": seed,
                "from_root": from_root,
                "last_round": last_round,
                "round": r,
                "depth": depth if depth is not None else r,
                "full_depth": r,
                "adopted": bool(res.adopted),
                "start": round(100 * start, 2),
                "right_half_biou": round(100 * now, 2),
                **(
                    {
                        "start_judged": round(100 * start_judged, 2),
                        "right_half_biou_judged": round(100 * now_judged, 2),
                    }
                    if roofs is not None
                    else {}
                ),
                "refine_s": round(seconds, 2),
            }
            print(json.dumps(row), flush=True)
            rows.write(json.dumps(row) + "\n")
            rows.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scenes", default="austin_dev,kampala_drone,nepal_drone,rio_wv2")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--depths", default="1,2,3")
    ap.add_argument("--work", type=Path, default=Path("out/s51/chain"))
    ap.add_argument("--rows", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0, help="the fine-tunes' seed (FitParams.seed)")
    ap.add_argument(
        "--verdict-areas",
        type=Path,
        default=None,
        help="the judged user (study --verdict-areas): roofs the reference lacks are not "
        "drawn as background, and rows also score the right half without them (*_judged)",
    )
    ap.add_argument(
        "--from-root",
        action="store_true",
        help="every round fine-tunes the bundled model the image chooses on the whole "
        "layer so far (one gate, no chain) instead of the last round's model",
    )
    ap.add_argument(
        "--last-round",
        action="store_true",
        help="every round fits the last round's networks (FitParams.from_image_start off: "
        "the rounds before session 52, a gate chain)",
    )
    a = ap.parse_args(argv)
    every = scenes(a.data, a.work / "scenes")
    depths = [int(d) for d in a.depths.split(",") if d]
    rows_path = a.rows or a.work / "rows.jsonl"
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    with rows_path.open("a") as rows:
        for name in a.scenes.split(","):
            run_scene(
                every[name],
                a.rounds,
                a.k,
                depths,
                a.work / name,
                rows,
                a.verdict_areas,
                a.seed,
                a.from_root,
                a.last_round,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
