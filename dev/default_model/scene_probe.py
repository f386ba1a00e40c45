"""The command line the per-scene probes share (nodata_probe, coarse_probe): scene names,
``--data``, ``--json``; each scene's row from ``scene_row(image, reference, work)`` in a
scratch folder, all rows written to the JSON file."""

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
    with tempfile.TemporaryDirectory() as tmp:
        rows = {n: scene_row(found[n].image, found[n].reference, Path(tmp)) for n in a.scenes}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rows, indent=1))
    return 0
