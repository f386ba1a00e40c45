"""What each command-line verb does; argument parsing lives in cli.py."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from .cli_progress import ProgressBar
from .engine.errors import MapRefinerError

if TYPE_CHECKING:
    from .engine.refine.params import RefineParams
    from .engine.scoring.turn_back import ChangeRegion


def _refine(a: argparse.Namespace) -> int:
    from .engine.refine.pipeline import RefineParams, refine_raster

    params = RefineParams(
        image=a.image,
        out=a.out,
        model_path=a.model,
        iterations=a.iterations,
        device=a.device,
        precision=a.precision,
        scores=a.scores,
        coarse=a.coarse,
        bands=a.bands,
        input_resolution_m=a.input_resolution,
        tile_size=a.tile_size,
        overwrite=a.overwrite,
        keep_corrections=not a.no_corrections,
        match_colours=not a.no_colour_match,
        allow_large=a.allow_large,
        prior=a.prior,
        prior_value_map=a.prior_value_map,  # checked by the prior (raster values: numbers)
        prior_class_field=a.prior_class_field,
        prior_layer=a.prior_layer,
        prior_line_width_m=a.prior_line_width,
        prior_strength=a.prior_strength,
        prior_register=not a.no_prior_shift,
        prior_regions=not a.one_prior_shift,
        prior_edges=not a.no_prior_edge_check,
        prior_search_m=a.prior_search,
        prior_keep=a.prior_keep,
        detail_iterations=a.detail_iterations,
        detail_resolution_m=a.detail_resolution,
        choose_model=a.model is None,  # the bundled model chosen for the image
    )
    if a.detail_resolution is not None and a.detail_iterations == 0:
        raise MapRefinerError("--detail-resolution needs --detail-iterations N (N of 1 or more).")
    if a.scheduler:
        return _refine_on_cluster(a, params)
    cluster_only = [f for f, v in _cluster_flags(a).items() if v]
    if cluster_only:
        raise MapRefinerError(
            f"{', '.join(cluster_only)}: only for a refine on a cluster; add --scheduler."
        )
    res = refine_raster(params, progress=ProgressBar("refine"))
    kept = (
        f", {res.corrections} drawn correction{'' if res.corrections == 1 else 's'} kept"
        if res.corrections
        else ""
    )
    print(
        f"wrote {res.out} ({res.iterations} iterations, {res.tiles} tiles, {res.device}, "
        f"{res.seconds:.1f} s{kept})"
    )
    if res.model_note:
        print(f"model: {res.model_note}")
    if res.colour_note:
        print(f"note: {res.colour_note}")
    if res.scale_note:
        print(f"note: {res.scale_note}")
    if res.corrections_note:
        print(f"note: {res.corrections_note}")
    if res.prior_note:
        print(f"prior: {res.prior_note}")
    return 0


def _cluster_flags(a: argparse.Namespace) -> dict[str, bool]:
    return {
        "--format": a.format is not None,
        "--resume": a.resume,
        "--block-tiles": a.block_tiles is not None,
    }


def _refine_on_cluster(a: argparse.Namespace, params: RefineParams) -> int:
    from .engine.cluster.driver import ClusterOptions, refine_on_cluster
    from .engine.cluster.job import DEFAULT_BLOCK_TILES

    run = refine_on_cluster(
        params,
        ClusterOptions(
            a.scheduler, a.format or "gtiff", a.resume, a.block_tiles or DEFAULT_BLOCK_TILES
        ),
        progress=ProgressBar("refine"),
    )
    res = run.result
    resumed = run.blocks - len(run.computed)
    print(
        f"wrote {res.out} ({res.iterations} iterations, {res.tiles} tiles in {run.blocks} "
        f"blocks, {len(run.computed)} computed, {resumed} resumed, {res.device}, "
        f"{res.seconds:.1f} s)"
    )
    if res.model_note:
        print(f"model: {res.model_note}")
    if res.colour_note:
        print(f"note: {res.colour_note}")
    if res.scale_note:
        print(f"note: {res.scale_note}")
    if res.corrections_note:
        print(f"note: {res.corrections_note}")
    return 0


def _labels(a: argparse.Namespace):
    from .training.tile import LabelSource

    return LabelSource(
        path=a.labels,
        value_map=a.value_map,
        class_field=a.class_field,
        layer=a.layer,
        mode=a.mode,
        line_width_m=a.line_width,
    )


def _train_coarse(a: argparse.Namespace) -> int:
    from .training.coarse import CoarseParams, train_coarse

    res = train_coarse(
        CoarseParams(
            image=a.image,
            labels=_labels(a),
            out=a.out,
            class_names=a.classes.split(","),
            ground_resolution_m=a.resolution,
            bands=a.bands,
            input_resolution_m=a.input_resolution,
            steps=a.steps,
            batch_size=a.batch_size,
            lr=a.lr,
            seed=a.seed,
            device=a.device,
            resume=not a.no_resume,
            overwrite=a.overwrite,
            allow_large=a.allow_large,
        ),
        progress=ProgressBar("train-coarse"),
    )
    print(f"wrote {res.model} ({res.steps} steps, loss {res.final_loss:.4f}, {res.seconds:.0f} s)")
    return 0


def _train_rnn(a: argparse.Namespace) -> int:
    from .training.rnn import RnnParams, train_rnn

    res = train_rnn(
        RnnParams(
            image=a.image,
            labels=_labels(a),
            out=a.out,
            base_model=a.model,
            steps=a.steps,
            batch_size=a.batch_size,
            patch_size=a.patch_size,
            iterations=a.iterations,
            lr=a.lr,
            seed=a.seed,
            device=a.device,
            class_specific=not a.class_agnostic,
            bands=a.bands,
            input_resolution_m=a.input_resolution,
            resume=not a.no_resume,
            overwrite=a.overwrite,
            allow_large=a.allow_large,
        ),
        progress=ProgressBar("train-rnn"),
    )
    print(f"wrote {res.model} ({res.steps} steps, loss {res.final_loss:.4f}, {res.seconds:.0f} s)")
    if res.note:
        print(f"note: {res.note}")
    return 0


def _finetune(a: argparse.Namespace) -> int:
    from .training.corrections.finetune import finetune
    from .training.corrections.fit import FitParams

    res = finetune(
        a.image,
        _labels(a),
        a.out,
        a.model,
        FitParams(
            adapt=a.adapt,
            steps=a.steps,
            seed=a.seed,
            max_seconds=a.time_budget,
            detail=a.detail_fit,
            **({"anchor_partner": ""} if a.no_anchor_partner else {}),
            **({} if a.folds is None else {"folds": a.folds}),
            **({} if a.edge_band is None else {"edge_band_m": a.edge_band}),
            **({} if a.outline_edges is None else {"outline_edges": a.outline_edges}),
            **({} if a.snap_outlines is None else {"snap_outlines": a.snap_outlines}),
            **({} if a.change_gate is None else {"change_gate": a.change_gate}),
            **({"change_to_drawn": False} if a.any_change else {}),
        ),
        device=a.device,
        bands=a.bands,
        input_resolution_m=a.input_resolution,
        overwrite=a.overwrite,
        allow_large=a.allow_large,
        progress=ProgressBar("finetune"),
        choose_base=a.model is None,  # the bundled model chosen for the image
        match_colours=not a.no_colour_match,
    )
    print(f"wrote {res.model} ({res.steps} steps, {res.seconds:.0f} s on {res.device})")
    print(res.message)
    return 0


def _evaluate(a: argparse.Namespace) -> int:
    from .engine.scoring.metrics import evaluate_rasters

    scores = evaluate_rasters(
        a.prediction,
        a.reference,
        a.classes.split(","),
        reference_value_map=a.reference_map,
        prediction_value_map=a.prediction_map,
    )
    print(json.dumps(scores.to_dict(), indent=2) if a.json else scores.format_table())
    return 0


def _vectorize(a: argparse.Namespace) -> int:
    from .engine.vectors.vectorize import vectorize

    res = vectorize(
        a.classmap,
        a.out,
        classes=a.classes.split(",") if a.classes else None,
        simplify_m=a.simplify,
        min_area_m2=a.min_area,
        overwrite=a.overwrite,
        progress=ProgressBar("vectorize"),
        scores_path=a.scores,
        regularize=a.regularize.split(",") if a.regularize else None,
        regularize_m=a.regularize_tolerance,
        regularize_every_edge=a.regularize_every_edge,
        merge_small_m2=a.merge_small,
        shared_borders=a.shared_borders,
    )
    print(f"wrote {res.path} ({res.feature_count} polygons)")
    return 0


def _snap_outlines(a: argparse.Namespace) -> int:
    from .training.corrections.snap_outlines import snap_outlines

    res = snap_outlines(
        a.image,
        a.corrections,
        a.out,
        class_field=a.class_field,
        keep=[k.strip() for k in a.keep.split(",") if k.strip()],
        layer=a.layer,
        overwrite=a.overwrite,
    )
    print(res.message())
    return 0


def _compare(a: argparse.Namespace) -> int:
    from .engine.vectors.compare import CompareParams, compare

    res = compare(
        a.prior,
        a.refined,
        a.out,
        CompareParams(
            class_name=a.class_name,
            prior_class_field=a.prior_class_field,
            prior_layer=a.prior_layer,
            moved_m=a.moved,
            search_m=a.search,
            min_area_m2=a.min_area,
        ),
        overwrite=a.overwrite,
    )
    print(f"wrote {res.path}: {res.summary()}")
    return 0


def _changes(a: argparse.Namespace) -> int:
    from .engine.scoring.changes import drawn_by, map_changes

    listing = a.largest is not None or a.largest_out is not None
    if listing and a.out is None:
        raise MapRefinerError(
            "--largest and --largest-out list the changes of the raster --out writes; add --out."
        )
    if a.largest_out is not None:  # before the comparison: a bad name costs no work
        from .engine.vectors.write import VectorTarget

        VectorTarget.for_path(a.largest_out, [a.before, a.after, a.out], a.overwrite)
    res = map_changes(
        a.before,
        a.after,
        a.out,
        class_names=a.class_names.split(",") if a.class_names else None,
        overwrite=a.overwrite,
        progress=ProgressBar("changes") if a.out is not None else None,
        drawn=drawn_by(a.model, a.after),
    )
    largest = []
    if listing and res.out is not None:
        from .engine.scoring.turn_back import REVIEW_TOP, largest_changes, write_changes_list

        largest = largest_changes(res.out, a.before, top=a.largest or REVIEW_TOP)
        if a.largest_out is not None:
            from osgeo import gdal

            srs = gdal.Open(str(res.out)).GetProjection()
            written = write_changes_list(
                largest, srs, a.largest_out, [a.before, a.after, res.out], a.overwrite
            )
            said = f"wrote {written}: the {len(largest)} largest changes"
            print(said, file=sys.stderr if a.json else sys.stdout)  # JSON alone on stdout
    if a.json:
        found = res.to_dict()
        if listing:
            found["largest"] = [_change_row(c) for c in largest]
        print(json.dumps(found, indent=2))
        return 0
    print(f"{a.after.name} against {a.before.name}: {res.summary()}")
    if res.out is not None:
        print(f"wrote {res.out}")
    if a.largest is None:
        return 0
    from osgeo import ogr

    for i, change in enumerate(largest, start=1):
        at = ogr.CreateGeometryFromWkt(change.wkt).PointOnSurface()
        print(f"{i:3d}. {change.describe()} (was {change.was}) at {at.GetX():.2f}, {at.GetY():.2f}")
    return 0


def _change_row(change: ChangeRegion) -> dict[str, object]:
    """A listed change (engine ChangeRegion) as JSON: what it was and became, its size, a
    point inside it (where a click turns it back) and its box (minx, miny, maxx, maxy),
    in the changes raster's CRS."""
    from osgeo import ogr

    outline = ogr.CreateGeometryFromWkt(change.wkt)
    inside = outline.PointOnSurface()
    minx, maxx, miny, maxy = outline.GetEnvelope()
    return {
        "was": change.was,
        "became": change.became,
        "pixels": change.pixels,
        "area_m2": change.area_m2,
        "point": [inside.GetX(), inside.GetY()],
        "box": [minx, miny, maxx, maxy],
        "cut": change.cut,
    }


def _fetch(a: argparse.Namespace) -> int:
    from .engine.rasters.fetch import FetchRequest, fetch_xyz
    from .engine.rasters.tiles import XyzSource, xyz_tile_size

    resolution = a.resolution
    if resolution is None:
        from .engine.modelfile.header import DEFAULT_MODEL_PATH, read_model_config

        resolution = read_model_config(a.model or DEFAULT_MODEL_PATH).ground_resolution_m
    from .engine.rasters.wms import WmsSource
    from .engine.rasters.wmts import WmtsSource

    source: WmsSource | WmtsSource | XyzSource
    if a.wms:
        source = WmsSource(a.url, a.wms, a.wms_crs)
    elif a.wmts:
        source = WmtsSource(a.url, a.wmts, a.tile_matrix_set)
    else:
        size = a.tile_size or xyz_tile_size(a.url)
        source = XyzSource(a.url, 0, a.max_zoom, tile_size=size)
    request = FetchRequest(source, a.bbox, a.crs, resolution, a.out, a.max_tiles)
    print(fetch_xyz(request, progress=ProgressBar("fetch")).describe())
    return 0


def _survey_model(a: argparse.Namespace) -> int:
    from .engine.modelfile.survey import survey_model

    reading = survey_model(
        a.images,
        a.out,
        model=a.model,
        bands=a.bands,
        input_resolution_m=a.input_resolution,
        match_colours=not a.no_colour_match,
        overwrite=a.overwrite,
        progress=ProgressBar("survey"),
    )
    print(reading.describe())
    print(f"refine each tile with --model {reading.path}")
    return 0


def _info(a: argparse.Namespace) -> int:
    from .engine.modelfile.io import DEFAULT_MODEL_PATH, read_model_file

    cfg, tensors = read_model_file(a.model or DEFAULT_MODEL_PATH)
    d = cfg.to_dict()
    d["parameters"] = int(sum(t.numel() for t in tensors.values()))
    parent = cfg.parent_config()
    if parent is not None:  # the parent inside (a correction round's gate): its name only
        d["gate_parent"] = parent.name
    if cfg.corrections:  # the images' thumbnails under the polygons: how many, not values
        d["corrections"] = _without_look_values(cfg.corrections)
    rounds = [r for r in (cfg.training.get("finetune") or []) if isinstance(r, dict)]
    if rounds:  # a fine-tuned model: which round it is and what it came from, first
        last = rounds[-1]
        d = {
            "round": {
                "name": cfg.name,
                "round": last.get("round"),
                "parent": last.get("parent"),
                **({"fitted_from": last["fitted_from"]} if last.get("fitted_from") else {}),
                "adopted": last.get("adopted"),
                "held_out_score": last.get("tuned_score"),
                "starting_model_score": last.get("base_score"),
                "change_gate": cfg.change_gate,
                "changes_to": [cfg.class_names[c] for c in cfg.change_to] or "any class",
                "drawn_on": _drawn_on(cfg.corrections),
            },
            **d,
        }
    print(json.dumps(d, indent=2))
    return 0


def _drawn_on(corrections: dict) -> dict[str, int]:
    """The images a fine-tuned model keeps drawn polygons of, and how many of each."""
    from .engine.labels.kept import image_entries

    return {
        str(e.get("image")): len({s.get("feature") for s in e.get("shapes") or []})
        for e in image_entries(corrections)
    }


def _without_look_values(corrections: dict) -> dict:
    """A model's kept corrections with each image's looks (drawn_look: 8 x 8 block means
    under every polygon) said in a line instead of listed."""
    from .engine.labels.kept import OTHER_IMAGES

    def short(entry: dict) -> dict:
        out = dict(entry)
        looks = out.get("looks")
        if isinstance(looks, dict):
            out["looks"] = (
                f"{looks.get('side')} x {looks.get('side')} block means of bands "
                f"{looks.get('bands')} under each of {len(looks.get('features') or {})} polygons"
            )
        if isinstance(out.get(OTHER_IMAGES), list):
            out[OTHER_IMAGES] = [short(e) if isinstance(e, dict) else e for e in out[OTHER_IMAGES]]
        return out

    return short(corrections)


def _demo(a: argparse.Namespace) -> int:
    from .cli_demo import run_demo

    return run_demo(a.data, a.out_dir, a.model, a.device, stream=sys.stdout)


VERBS = {
    "refine": _refine,
    "train-coarse": _train_coarse,
    "train-rnn": _train_rnn,
    "finetune": _finetune,
    "evaluate": _evaluate,
    "vectorize": _vectorize,
    "compare": _compare,
    "changes": _changes,
    "snap-outlines": _snap_outlines,
    "fetch": _fetch,
    "survey-model": _survey_model,
    "info": _info,
    "demo": _demo,
}


def run(args: argparse.Namespace) -> int:
    return VERBS[args.verb](args)
