"""The command line the per-scene probes share (bit_depth_probe, nodata_probe,
coarse_probe): scene names, ``--data``, ``--json``; each scene's row from
``scene_row(image, reference, work)`` in a scratch folder, added to the JSON file's rows
(kept from an earlier run) and written after each scene."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..corrections.scenes import scenes
from ..corrections.study import ROOT

SceneRow = Callable[[Path, Path, Path], dict]


def scene_probe_main(doc: str, scene_row: SceneRow, argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("scenes", nargs="+")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--json", type=Path, required=True)
    a = ap.parse_args(argv)
    found = scenes(a.data, ROOT / "out" / "corrections" / "data")
    rows = json.loads(a.json.read_text()) if a.json.exists() else {}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.scenes:
            rows[name] = scene_row(found[name].image, found[name].reference, Path(tmp))
            a.json.write_text(json.dumps(rows, indent=1))
            print(name, json.dumps(rows[name]), flush=True)
    return 0
