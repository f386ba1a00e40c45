"""The bundled model's card: what it was trained on, how, and its measured scores."""

from __future__ import annotations

import json
import platform
import tempfile
from pathlib import Path

from ...engine.modelfile.io import load_model
from ...engine.refine.pipeline import RefineParams, refine_raster
from ...engine.scoring.metrics import evaluate_rasters

REFERENCE_MAP = {0: 0, 255: 1}


def score_on(model_path: Path, image: Path, reference: Path) -> dict:
    """Overall accuracy and IoU of the coarse (0 it.) and refined maps on one tile."""
    model = load_model(model_path)
    cfg = model[1]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, iters in (("coarse", 0), ("refined", cfg.default_iterations)):
            tif = Path(tmp) / f"{label}.tif"
            refine_raster(
                RefineParams(image=image, out=tif, iterations=iters, device="cpu"), model=model
            )
            s = evaluate_rasters(tif, reference, cfg.class_names, reference_value_map=REFERENCE_MAP)
            out[label] = {
                "overall_accuracy": s.overall_accuracy,
                "mean_iou": s.mean_iou,
                "iou": dict(zip(cfg.class_names, s.iou)),
            }
    return out


def write_card(model_path: Path, data: Path) -> Path:
    cfg = load_model(model_path)[1]
    scores = score_on(
        model_path, data / "austin/austin_dev_rgb.tif", data / "austin/austin_dev_gt.tif"
    )
    t = cfg.training
    c, r = t.get("coarse") or {}, t.get("rnn") or {}

    def row(label: str, s: dict) -> str:
        ious = " | ".join(f"{100 * v:.2f}" for v in s["iou"].values())
        return (
            f"| {label} | {100 * s['overall_accuracy']:.2f} | {100 * s['mean_iou']:.2f} | {ious} |"
        )

    names = " | ".join(f"IoU {n}" for n in cfg.class_names)
    refined_label = f"CNN + RNN ({cfg.default_iterations} iterations{_then(cfg.detail_iterations)})"
    scenes_text = _scenes_section(t.get("multiscene"), model_path.parent / "scores_scenes.json")
    scenes_text += _detail_section(
        t.get("detail_rnn"), model_path.parent / "scores_detail.json", cfg.detail_temperature
    )
    text = f"""# Model card: {cfg.name}

File: `{model_path.name}` (safetensors weights; the JSON config is embedded and
copied to `{model_path.with_suffix(".json").name}`). Classes: {", ".join(cfg.class_names)}.
Input: bands {cfg.bands} (RGB), normalised with the mean/std in the config.
Ground resolution: {cfg.ground_resolution_m} m per pixel (inputs are resampled to it
bilinearly and the scores back to the input grid). Default RNN iterations: {cfg.default_iterations}.

When it runs: wherever a model is named `default` (CLI `--model default`, the dialog's
*Bundled default model*, Processing `BUNDLED=0`), and wherever none is named and the
image looks like one of the areas it was trained on (its colour percentiles within 2.4 of
one of `default_home.json`'s) whose held-out half the general model does not read two
points better (Austin, Kampala, LoveDA, Vaihingen); otherwise the bundled general model runs
(engine/modelfile/bundled_choice.py; docs/results_bundled_recipes.md "Session 37").

## Training
- Coarse CNN (paper's section III, SGD lr {c.get("lr")}, momentum {c.get("momentum")},
  weight decay {c.get("weight_decay")}, batches of {c.get("batch_size")} patches with
  {c.get("out_size")}x{c.get("out_size")} outputs): `{c.get("image")}` with the imprecise
  OpenStreetMap building mask `{c.get("labels")}`, labels of Xiamen's `training.tiles` only
  (validation and evaluation tiles held out). {c.get("steps")} steps, seed {c.get("seed")},
  {c.get("seconds")} s on {c.get("device")}; final loss (running mean) {c.get("final_loss")}.
- RNN (AdaGrad lr {r.get("lr")}, {r.get("iterations")} unrolled iterations, batches of
  {r.get("batch_size")} patches of {r.get("patch_size")}x{r.get("patch_size")}, CNN frozen):
  the accurately labelled Austin enhancement tile `{r.get("image")}` / `{r.get("labels")}`
  ({r.get("labelled_pixels")} labelled pixels at model resolution). {r.get("steps")} steps,
  seed {r.get("seed")}, {r.get("seconds")} s on {r.get("device")}; final loss {r.get("final_loss")}.
- Commands (`dev/default_model/build.py`):

      python -m map_refiner.dev.default_model.build prepare --data ../shared/data
      bash dev/device_build.sh out/default_model_data OUTDIR 240 150   # on a GPU box
      python -m map_refiner.dev.default_model.build card --data ../shared/data

  The fit step ran on a lent NVIDIA H200 (no GDAL there, hence the prepare step),
  time-budgeted at 240 s for the CNN and 150 s for the RNN. `... default_model.build all`
  runs everything on one machine; on a 2-core CPU a CNN step (batch 64) takes 1-2 s,
  so bound it with `--coarse-steps`/`--rnn-steps`. GPU training is not bit-identical
  to CPU training.

{scenes_text}
## Scores on the Austin test tile (`austin_dev`, never used for training)
Measured on the 0.3 m reference grid against `austin_dev_gt.tif`, in percent
(scored on {platform.machine()} CPU with `python -m map_refiner.dev.default_model.build card`):

| map | overall accuracy | mean IoU | {names} |
|---|---|---|{"---|" * len(cfg.class_names)}
{row("coarse CNN (0 iterations)", scores["coarse"])}
{row(refined_label, scores["refined"])}

The coarse CNN was trained in another city (Xiamen, web-map imagery) with imprecise
labels, so on Austin's aerial imagery it finds few buildings; the RNN, trained on
accurate labels, both recovers and outlines them.

## Data terms
Xiamen: geocompass/robosat_buildings_training (AGPL-3.0), imagery for research use only.
Austin: a crop of the Inria Aerial Image Labeling dataset (via Oslandia/deeposlandia, MIT);
Inria asks for attribution.{_more_terms(t.get("multiscene"))}
"""
    card = model_path.parent / "MODEL_CARD.md"
    card.write_text(text)
    (model_path.parent / "scores_austin_dev.json").write_text(json.dumps(scores, indent=2) + "\n")
    return card


def _scenes_section(record: dict | None, scores_path: Path) -> str:
    """The several-scene retraining of the CNN head and RNN, with its per-scene scores."""
    if not record:
        return ""
    scenes = ", ".join(f"`{n}`" for n in record["scenes"])
    text = f"""- Then the CNN's last layer and the RNN, retrained together
  (`dev/default_model/multiscene.py`, {record["optimiser"]}; {record["steps"]} steps,
  {record["seconds"]} s on {record["device"]}; conv1-3 kept): the left half of every
  shared scene with an accurate building reference ({scenes}; `austin_enh` whole), each
  in {record["copies"]} colour-jittered copies besides the original. Never used:
  {", ".join(f"`{n}`" for n in record["left_out"])} and the right halves.
"""
    if scores_path.exists():
        scores = json.loads(scores_path.read_text())
        old, new = scores["old"], scores["new"]
        rows = "\n".join(
            f"| {n} | {old[n]['building_iou']:.1f} | {new[n]['building_iou']:.1f} | "
            f"{old[n]['accuracy']:.1f} | {new[n]['accuracy']:.1f} |"
            for n in new
        )
        text += f"""
## Scores on every shared scene (right halves, never trained on)
Building IoU and pixel accuracy (building or not) in percent, the product's refine
without the detail RNN below (`python -m map_refiner.dev.default_model.multiscene
compare`, made before it existed); *before*: the
model trained on Xiamen and the Austin tile only; `austin_dev` is scored on its right
half like the others (it was not used at all).

| scene | building IoU before | after | accuracy before | after |
|---|---|---|---|---|
{rows}

These right halves come from the same images as the left halves it learnt from: they
say what a new area of a known sensor gets. A sensor it never saw gains much less
(docs/STATUS.md: a scene left out of the retraining entirely). The two ISPRS crops
(26 and 46 m across, 2-4 buildings, 5-9 cm pixels on a 43-77 px model grid) are
sanity checks, not statistics: on them the retrained model finds almost no building.
"""
    return text


def _detail_section(record: dict | None, scores_path: Path, temperature: float = 1.0) -> str:
    """The detail RNN (dev/detail/train.py) and its scores with and without it."""
    if not record:
        return ""
    areas = ", ".join(f"`{n}` ({part})" for n, part in record["areas"].items())
    others = record.get("starts_from") or []
    starts = (
        "the refined maps of this model and of "
        + ", ".join(f"`{m}`" for m in others)
        + " (other networks' maps of the same images: a fine-tuned model's maps are not"
        " this model's either; docs/results_detail.md)"
        if others
        else "this model's refined maps"
    )
    text = f"""
## Detail RNN (outlines on imagery finer than 0.6 m)
A second RNN of the same shape runs {record["iterations"]} more iterations on a grid
finer than the model's (the image's own pixels, no finer than 0.15 m), by default on
imagery at least 1.8x finer than 0.6 m (0.3 m aerial, drones); `refine
--detail-iterations 0` turns it off. It started from the RNN above and learnt on that
grid (`python -m map_refiner.dev.detail.train`, Adam lr {record["lr"]}, {record["steps"]}
steps of {record["batch_size"]} patches of {record["patch_size"]} fine pixels, seed
{record["seed"]}, {record["seconds"]} s on this CPU; every other weight unchanged): {areas},
starting from {starts}. Where the model grid's map is at least 0.9 sure, the detail
iterations keep its scores (predict.DETAIL_KEEPS_SURE).{_temperature(temperature)}
"""
    if not scores_path.exists():
        return text
    scores = json.loads(scores_path.read_text())
    rows = "\n".join(
        f"| {n} | {s['today']['building_iou']:.1f} | {s['auto']['building_iou']:.1f} | "
        f"{_f(s['today']['boundary_f_0.5m'])} | {_f(s['auto']['boundary_f_0.5m'])} |"
        for n, s in scores.items()
    )
    return (
        text
        + f"""
Right halves (never trained on; austin_dev not at all), in percent, without (`off`) and
with the detail iterations the model runs by default (`auto`; Rio's 0.5 m pixels are
not 1.8x finer, so it gets none); boundary F: outline pixels within 0.5 m both ways
(`python -m map_refiner.dev.detail.score --settings today,auto --json
resources/models/scores_detail.json`; docs/results_detail.md "A detail RNN"):

| scene | building IoU off | auto | boundary F 0.5 m off | auto |
|---|---|---|---|---|
{rows}

loveda_0's right half holds no building: a few false building pixels take its IoU
from 100 to 0 at 99.97 % accuracy (docs/results_detail.md).
"""
    )


def _temperature(temperature: float) -> str:
    """The card's sentence on the model's detail temperature (none at 1)."""
    if temperature == 1.0:
        return ""
    return f"""
Before the detail iterations the model grid's scores are divided by the model's detail
temperature, {temperature:g} (session 35: the starting maps of models that never saw a
scene gain at 2 on every such scene measured, and the table below is made with it;
docs/results_detail.md "Session 35")."""


def _then(detail_iterations: int) -> str:
    """The refine's detail iterations on the 0.3 m Austin tile, as the card's row says."""
    return f", then {detail_iterations} on the 0.3 m grid" if detail_iterations else ""


def _f(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _more_terms(record: dict | None) -> str:
    if not record:
        return ""
    return """
The several-scene retraining also used (see ../shared/data/README.md): Kampala and
Nepal (hotosm/fAIr-utilities, AGPL-3.0; OpenAerialMap imagery, OpenStreetMap ODbL),
Rio (SpaceNet 1, CC BY-SA 4.0, imagery DigitalGlobe/Maxar), LoveDA (CC BY-NC-SA 4.0:
non-commercial) and the ISPRS benchmark crops (research use only, cite ISPRS). The
weights inherit these terms: research and non-commercial use."""
