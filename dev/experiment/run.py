"""Section IV of Maggiori et al. 2017 on our real data: the table, baselines,
ablations and figures, written to ``docs/results.md`` and ``docs/figures/``.

    python -m map_refiner.dev.experiment.run            # the full run (see docs/results.md)
    python -m map_refiner.dev.experiment.run --quick    # smoke run, tiny step counts

Protocol: the committed coarse CNN (trained on Xiamen's imprecise OSM mask,
training tiles only; ``--retrain-cnn`` retrains it, slow on a CPU) is scored
on Xiamen's held-out evaluation tiles; every refinement is trained or tuned
on the Austin enhancement tile and scored once on the Austin test tile, at
the model's 0.6 m with outputs resampled to the 0.3 m reference grid. A
separate three-class run refines degraded LoveDA reference maps.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from ...engine.device import resolve_device
from ...engine.modelfile.io import load_model
from .. import provenance
from .plan import full_plan, quick_plan
from .runs import run_austin, run_loveda, run_xiamen

log = logging.getLogger(__name__)
# The code this experiment's numbers depend on (the report says if it was edited since the commit).
EXPERIMENT_CODE = [
    "engine",
    "dev/experiment",
    "dev/webtiles.py",
    "training/data.py",
    "training/sampler.py",
    "training/loop.py",
    "training/tile.py",
    "training/coarse.py",
    "training/coarse_fit.py",
]


def choose_threads(requested: int) -> int:
    """``0``: all cores on an idle machine, one thread when others already load it
    (oversubscribed BLAS threads make every step several times slower)."""
    if requested > 0:
        return requested
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return cores if load < 0.5 * cores else 1


def git_state(repo: Path) -> dict[str, str]:
    """The commit the code came from and whether the experiment's files were edited since."""
    return provenance.git_state(repo, EXPERIMENT_CODE)


def repo_root() -> Path:
    return provenance.REPO


def machine() -> str:
    return f"{os.cpu_count()}-core {platform.machine()} CPU"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument(
        "--out-dir",
        type=Path,
        help="where results.md and figures/ go "
        "(default docs/, or out/experiment_quick with --quick)",
    )
    ap.add_argument(
        "--work",
        type=Path,
        help="scratch folder: results.json, the retrained CNN "
        "(default out/experiment, or out/experiment_quick/work with --quick)",
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: a few steps, tiny grids")
    ap.add_argument("--steps", type=int, help="training steps of every learned refiner")
    ap.add_argument("--batch", type=int, help="patches per step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: automatic)")
    ap.add_argument("--model", type=Path, help="model whose CNN is used (default: bundled)")
    ap.add_argument(
        "--retrain-cnn",
        action="store_true",
        help="retrain the coarse CNN on Xiamen first (slow on a CPU: 1-2 s a step)",
    )
    ap.add_argument("--cnn-steps", type=int, default=2000)
    ap.add_argument("--machine", default=None, help="how the machine is described in the report")
    ap.add_argument("--skip-loveda", action="store_true")
    ap.add_argument(
        "--loveda-only",
        action="store_true",
        help="rerun only the LoveDA part and replace it in WORK/results.json",
    )
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite results.md from WORK/results.json without running anything",
    )
    a = ap.parse_args(argv)
    a.work = a.work or Path("out/experiment_quick/work" if a.quick else "out/experiment")
    if a.report_only:
        from .report import write_report

        res = json.loads((a.work / "results.json").read_text())
        res["rendered"] = {**git_state(repo_root()), "from": str(a.work / "results.json")}
        out = a.out_dir or (Path("out/experiment_quick") if a.quick else Path("docs"))
        from .runs import austin_curve_figures

        (out / "figures").mkdir(parents=True, exist_ok=True)
        austin_curve_figures(
            res["austin"]["rows"],
            res["austin"]["iteration_curves"],
            res["fit"]["iterations"],
            out / "figures",
        )
        write_report(res, out / "results.md")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for noisy in ("map_refiner.training.loop", "map_refiner.training.data"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    t_start = time.perf_counter()
    load_start = os.getloadavg()[0]
    plan = quick_plan() if a.quick else full_plan()
    if a.steps:
        plan.fit.steps = a.steps
        plan.fit.eval_every = max(1, a.steps // 6)
    if a.batch:
        plan.fit.batch_size = a.batch
    plan.fit.seed = a.seed
    threads = choose_threads(a.threads)
    torch.set_num_threads(threads)
    device = resolve_device(a.device)
    out_dir = a.out_dir or (Path("out/experiment_quick") if a.quick else Path("docs"))
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    repo = repo_root()
    if a.loveda_only:
        return rerun_loveda(a, plan, device, out_dir, t_start, load_start, threads, argv)
    results: dict[str, object] = {
        "command": "python -m map_refiner.dev.experiment.run"
        + (" " + " ".join(argv or sys.argv[1:])).rstrip(),
        "seed": a.seed,
        "threads": threads,
        "device": str(device),
        "machine": a.machine or machine(),
        "git": git_state(repo),
        "torch": torch.__version__,
        "fit": asdict(plan.fit),
        "load_average_start": round(load_start, 2),
        "started": time.strftime("%Y-%m-%d %H:%M %Z"),
    }
    model_path = a.model
    if a.retrain_cnn:
        from .cnn import retrain_cnn

        model_path = retrain_cnn(a.data, a.work, a.cnn_steps, a.seed, a.device)
        results["cnn_retrained"] = {"steps": a.cnn_steps, "model": str(model_path)}
    net, config = load_model(model_path, "cpu")
    results["cnn"] = {
        "model": str(model_path or "bundled default.safetensors"),
        "training": config.training.get("coarse"),
    }
    results["xiamen"] = run_xiamen(net, config, a.data, plan)
    results["austin"] = run_austin(net, config, a.data, plan, device, out_dir)
    if not a.skip_loveda:
        results["loveda"] = run_loveda(a.data, plan, device, out_dir)
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    results["load_average_end"] = round(os.getloadavg()[0], 2)
    (a.work / "results.json").write_text(json.dumps(results, indent=1, default=_plain))
    from .report import write_report

    path = write_report(results, out_dir / "results.md")
    log.info("wrote %s in %.0f s", path, results["seconds"])
    return 0


def rerun_loveda(
    a: argparse.Namespace,
    plan,
    device: torch.device,
    out_dir: Path,
    t_start: float,
    load_start: float,
    threads: int,
    argv: list[str] | None,
) -> int:
    """The LoveDA part alone, recorded with its own command, commit, time and load."""
    from .report import write_report

    path = a.work / "results.json"
    results = json.loads(path.read_text())
    git, started = git_state(repo_root()), time.strftime("%Y-%m-%d %H:%M %Z")
    loveda = run_loveda(a.data, plan, device, out_dir)
    loveda["run"] = {
        "command": "python -m map_refiner.dev.experiment.run " + " ".join(argv or sys.argv[1:]),
        "git": git,
        "threads": threads,
        "started": started,
        "seconds": round(time.perf_counter() - t_start, 1),
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    old = results.get("loveda")
    if old and "run" not in old:
        loveda["replaced"] = {
            "rows": [
                {
                    "name": r["name"],
                    "test_mean_iou": r["test"]["mean_iou"],
                    "train_mean_iou": (r["train"] or {}).get("mean_iou"),
                }
                for r in old["rows"]
            ],
            "degradation": old["degradation"],
        }
    elif old and old.get("replaced"):
        loveda["replaced"] = old["replaced"]
    results["loveda"] = loveda
    path.write_text(json.dumps(results, indent=1, default=_plain))
    write_report(results, out_dir / "results.md")
    return 0


def _plain(o: object) -> object:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


if __name__ == "__main__":
    sys.exit(main())
