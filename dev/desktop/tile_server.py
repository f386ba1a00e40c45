"""A local XYZ service for the desktop session: 256-pixel PNG tiles cut from a window of
a web-map mosaic (EPSG:3857, pixels on a zoom level's lattice, e.g. Xiamen at zoom 18),
served by ``python -m http.server`` on 127.0.0.1 in a process of its own."""

from __future__ import annotations

import math
import socket
import subprocess
import sys
import time
from pathlib import Path

from osgeo import gdal

gdal.UseExceptions()
HALF = 20037508.342789244


def cut_tiles(mosaic: Path, folder: Path, window: tuple[int, int, int, int]) -> int:
    """Tiles ``folder/z/x/y.png`` of the mosaic's pixel window (col, row, width, height,
    multiples of 256 from a tile corner); the mosaic is only read. Returns the zoom."""
    ds = gdal.OpenEx(str(mosaic), gdal.OF_RASTER | gdal.OF_READONLY)
    gt = ds.GetGeoTransform()
    zoom = round(math.log2(2 * HALF / (256 * gt[1])))
    col0 = round((gt[0] + HALF) / gt[1])
    row0 = round((HALF - gt[3]) / gt[1])
    col, row, width, height = window
    for dy in range(0, height, 256):
        for dx in range(0, width, 256):
            x, y = (col0 + col + dx) // 256, (row0 + row + dy) // 256
            out = folder / str(zoom) / str(x) / f"{y}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            src = [col + dx, row + dy, 256, 256]
            gdal.Translate(str(out), ds, format="PNG", srcWin=src, bandList=[1, 2, 3])
            Path(str(out) + ".aux.xml").unlink(missing_ok=True)
    return zoom


def serve(folder: Path) -> tuple[subprocess.Popen, str]:
    """``python -m http.server`` on a free port of 127.0.0.1; the XYZ URL template."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return server, f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png"
