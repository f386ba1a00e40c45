"""The correction layer dev/desktop/screenshots.py ``--session snap`` opens: a scene's
largest missed buildings (the bundled default model's map, left half) drawn as the
study's ``shifted:D`` user draws them (users.drawn_as, seed 0), as a GeoPackage with a
``class`` field.

    python -m map_refiner.dev.desktop.snap_corrections --scene kampala_drone \\
        --out out/s33/kampala_shifted.gpkg [--maps out/s32/probe] [--k 6] [--drawing shifted:1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..corrections.left_half import left_half
from ..corrections.scenes import scenes
from ..corrections.users import drawn_as, write_corrections


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scene", default="kampala_drone")
    ap.add_argument("--maps", type=Path, default=Path("out/s32/probe"))
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--drawing", default="shifted:1")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    scene = left_half(scenes(a.data, Path("out/corrections/data"))[a.scene], a.maps)
    drawn = drawn_as(scene.missed(a.k), a.drawing, scene.pixel_m, scene.half, 0)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    print(write_corrections(drawn, scene.like, a.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
