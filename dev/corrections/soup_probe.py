"""Probe: two fits of one round averaged into one network (a "soup", Wortsman et al.
2022: fine-tunes of one starting network stay in one basin), against each fit alone
(session 40; docs/results_corrections.md "Session 40").

A round's fit varies with its seed (which polygons are held out, the patches' order):
never-seen Kampala's K=4 round ended at 44.5 -> 35.1..49.8 across seeds and settings in
session 39. Averaging two fits' weights is one network again, so the refine costs what it
did; the fine-tune would cost two fits. This takes the kept fits of the same study group
(folder, scene, user, K, variant) made with two seeds, averages their weights (and detail
temperatures; the first seed's kept polygons), refines the soup through the product's
path and judges its right half as changes_probe does (``dgate0.7``: the product's gate
and direction rule), beside the two fits' own rows.

    python -m map_refiner.dev.corrections.soup_probe \\
        --rows out/s39/changes_dgate.json out/s39/changes_s39.json --json out/s40/soups.json
"""

from __future__ import annotations

import argparse
import collections
import copy
import glob
import json
import re
import tempfile
from pathlib import Path

import numpy as np

from .changes_probe import drawn_classes, judge, parent_of, parent_ratio, top_at

KEY = re.compile(r"(?P<group>.+)_seed(?P<seed>\d+)$")


def model_file(key: str) -> Path | None:
    """The kept model of a probe row's key (``folder/stem``); None when two sessions kept
    a file of that name (the probe rows cannot tell which one they are of)."""
    found = glob.glob(f"out/s3[689]/models*/{key}.safetensors")
    return Path(found[0]) if len(found) == 1 else None


def soup(first: Path, second: Path, out: Path) -> Path:
    """The two fits' weights and detail temperatures averaged, the first's polygons."""
    import torch

    from ...engine.modelfile.io import load_model, save_model

    net, config = load_model(first, "cpu")
    other, other_config = load_model(second, "cpu")
    theirs = other.state_dict()
    mixed = {
        k: (v.float() + theirs[k].float()).div(2).to(v.dtype) if v.is_floating_point() else v
        for k, v in net.state_dict().items()
    }
    net.load_state_dict(mixed)
    config = copy.deepcopy(config)
    config.detail_temperature = (config.detail_temperature + other_config.detail_temperature) / 2
    with torch.no_grad():
        return save_model(net, config, out, overwrite=True)


def pairs(rows: dict[str, dict]) -> dict[str, tuple[str, str]]:
    """Each study group with two seeds or more: its first two seeds' keys."""
    seeds: dict[str, dict[int, str]] = collections.defaultdict(dict)
    for key in rows:
        m = KEY.match(key)
        if m:
            seeds[m["group"]][int(m["seed"])] = key
    return {g: (s[min(s)], s[sorted(s)[1]]) for g, s in seeds.items() if len(s) >= 2}


def main(argv: list[str] | None = None) -> int:
    from osgeo import gdal

    from .scenes import scenes
    from .study import ROOT, refine

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=Path, nargs="+", required=True, help="changes_probe rows")
    p.add_argument("--json", type=Path, required=True, help="the soups' rows (kept, added to)")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    a = p.parse_args(argv)
    rows: dict[str, dict] = {}
    for path in a.rows:
        rows |= json.loads(path.read_text())
    done = json.loads(a.json.read_text()) if a.json.exists() else {}
    found = scenes(a.data, ROOT / "out" / "corrections" / "data")
    parents: dict[tuple[str, str], np.ndarray] = {}
    with tempfile.TemporaryDirectory(dir=ROOT / "out" / "corrections") as tmp:
        work = Path(tmp)
        for group, (k1, k2) in sorted(pairs(rows).items()):
            if group in done:
                continue
            f1, f2 = model_file(k1), model_file(k2)
            if f1 is None or f2 is None:
                print(group, "skipped: kept twice under one name", flush=True)
                continue
            name = rows[k1]["scene"]
            scene = found[name]
            parent = parent_of(f1)
            if parent_of(f2) != parent:
                continue
            if (name, str(parent)) not in parents:
                parents[(name, str(parent))], _ = refine(scene.image, work / "p.tif", parent)
            mixed = soup(f1, f2, work / "soup.safetensors")
            after, probs = refine(scene.image, work / "soup.tif", mixed)
            ref = gdal.Open(str(scene.reference)).ReadAsArray() > 0
            ratio = parent_ratio(mixed, parent, scene.image)
            row = judge(
                parents[(name, str(parent))],
                after,
                probs.max(0),
                ref,
                top_at(probs, ratio),
                drawn_classes(f1),
            )
            done[group] = {
                "scene": name,
                "before": row["before"],
                "soup": row["dgate0.7"],
                "soup_ungated": row["after"],
                "first": rows[k1]["dgate0.7"],
                "second": rows[k2]["dgate0.7"],
            }
            a.json.parent.mkdir(parents=True, exist_ok=True)
            a.json.write_text(json.dumps(done, indent=1))
            print(group, json.dumps(done[group]), flush=True)
    print(summary(done))
    return 0


def summary(done: dict[str, dict]) -> str:
    """Per kind of folder (own, never, ...) and over all: right halves summed over the
    start, rounds below it (by over 0.05) and the worst, for the soup and each fit."""
    kinds: dict[str, list[dict]] = collections.defaultdict(list)
    for group, row in done.items():
        kinds[group.split("/")[0].split("_")[0]].append(row)
    kinds["all"] = list(done.values())
    lines = ["| groups | soup | first seed | second seed |", "|---|---|---|---|"]
    for kind, found in kinds.items():
        cells = []
        for key in ("soup", "first", "second"):
            d = [r[key] - r["before"] for r in found]
            cells.append(f"{sum(d):+.1f} ({sum(x < -0.05 for x in d)}; {min(d):+.1f})")
        lines.append(f"| {kind} ({len(found)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
