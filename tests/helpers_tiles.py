"""A local XYZ tile server for tests: 256 x 256 (or 512 x 512) PNG tiles cut from an
EPSG:3857 raster whose pixels are one zoom level's pixels, on 127.0.0.1 (port chosen by
the system), named by {z}/{x}/{y} or by a Bing-style quadkey."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
from osgeo import gdal

gdal.UseExceptions()
HALF = 20037508.342789244
TILE = 256


def pixel_size(zoom: int, tile: int = TILE) -> float:
    return 2 * HALF / (tile * 2**zoom)


def quadkey_tile(quadkey: str) -> tuple[int, int, int]:
    """(z, x, y) of a Bing quadkey: one digit per zoom, bit 0 for x, bit 1 for y."""
    x = y = 0
    for digit in quadkey:
        d = int(digit)
        if not 0 <= d <= 3:
            raise ValueError(quadkey)
        x, y = 2 * x + (d & 1), 2 * y + (d >> 1)
    return len(quadkey), x, y


@dataclass
class TileServer:
    """Serves ``source`` (read-only) at ``zoom``; counts what it served."""

    source: Path
    zoom: int
    flip_y: bool = False  # rows counted from the south (TMS, QGIS's {-y})
    delay_s: float = 0.0  # per tile: a slow service, to cancel in mid-fetch
    tile: int = TILE  # tile width and height in pixels
    url: str = ""
    quadkey_url: str = ""
    wms_url: str = ""
    served: list[tuple[int, int, int]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # every request's path, answered or not
    referers: set[str | None] = field(default_factory=set)
    bytes_served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def tile_png(self, z: int, x: int, y: int) -> bytes | None:
        if z != self.zoom:
            return None
        if self.flip_y:
            y = 2**z - 1 - y
        ds = gdal.OpenEx(str(self.source), gdal.OF_RASTER | gdal.OF_READONLY)
        gt = ds.GetGeoTransform()
        n = self.tile
        res = pixel_size(z, n)
        col0 = round((-HALF + x * n * res - gt[0]) / res)
        row0 = round((gt[3] - (HALF - y * n * res)) / res)
        c0, r0 = max(col0, 0), max(row0, 0)
        c1, r1 = min(col0 + n, ds.RasterXSize), min(row0 + n, ds.RasterYSize)
        if c1 <= c0 or r1 <= r0:
            return None
        tile = np.zeros((3, n, n), dtype=np.uint8)
        data = ds.ReadAsArray(c0, r0, c1 - c0, r1 - r0, band_list=[1, 2, 3])
        tile[:, r0 - row0 : r1 - row0, c0 - col0 : c1 - col0] = data
        mem = gdal.GetDriverByName("MEM").Create("", n, n, 3, gdal.GDT_Byte)
        mem.WriteArray(tile)
        name = f"/vsimem/tile_{uuid.uuid4().hex}.png"
        gdal.GetDriverByName("PNG").CreateCopy(name, mem)
        png = bytes(gdal.VSIGetMemFileBuffer_unsafe(name))
        gdal.Unlink(name)
        return png

    def wms_png(self, query: dict[str, str]) -> bytes | None:
        """A WMS 1.1.1 GetMap in EPSG:3857: the source resampled (nearest) onto the box."""
        if query.get("REQUEST") != "GetMap" or query.get("SRS") != "EPSG:3857":
            return None
        minx, miny, maxx, maxy = (float(v) for v in query["BBOX"].split(","))
        name = f"/vsimem/wms_{uuid.uuid4().hex}.png"
        src = gdal.OpenEx(str(self.source), gdal.OF_RASTER | gdal.OF_READONLY)
        gdal.PushErrorHandler("CPLQuietErrorHandler")  # a box partly outside: filled black
        try:
            gdal.Translate(
                name,
                src,
                format="PNG",
                projWin=[minx, maxy, maxx, miny],
                bandList=[1, 2, 3],
                width=int(query["WIDTH"]),
                height=int(query["HEIGHT"]),
                resampleAlg="nearest",
            )
        except RuntimeError:
            return None
        finally:
            gdal.PopErrorHandler()
        png = bytes(gdal.VSIGetMemFileBuffer_unsafe(name))
        gdal.Unlink(name)
        return png

    def capabilities(self) -> bytes:
        """Just enough WMS 1.3.0 capabilities for QGIS to make a valid layer ``mosaic``."""
        link = f'xlink:href="{self.wms_url}?"'
        get = f"<DCPType><HTTP><Get><OnlineResource {link}/></Get></HTTP></DCPType>"
        world = (
            "<EX_GeographicBoundingBox><westBoundLongitude>-180</westBoundLongitude>"
            "<eastBoundLongitude>180</eastBoundLongitude><southBoundLatitude>-85"
            "</southBoundLatitude><northBoundLatitude>85</northBoundLatitude>"
            "</EX_GeographicBoundingBox>"
            f'<BoundingBox CRS="EPSG:3857" minx="{-HALF}" miny="{-HALF}" '
            f'maxx="{HALF}" maxy="{HALF}"/>'
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><WMS_Capabilities version="1.3.0" '
            'xmlns="http://www.opengis.net/wms" xmlns:xlink="http://www.w3.org/1999/xlink">'
            f"<Service><Name>WMS</Name><Title>test</Title><OnlineResource {link}/></Service>"
            "<Capability><Request>"
            f"<GetCapabilities><Format>text/xml</Format>{get}</GetCapabilities>"
            f"<GetMap><Format>image/png</Format>{get}</GetMap>"
            "</Request><Exception><Format>XML</Format></Exception>"
            f"<Layer><Title>root</Title><CRS>EPSG:3857</CRS>{world}"
            f'<Layer queryable="0"><Name>mosaic</Name><Title>mosaic</Title><CRS>EPSG:3857</CRS>'
            f"{world}</Layer></Layer></Capability></WMS_Capabilities>"
        ).encode()


def _handler(server: TileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            time.sleep(server.delay_s)
            server.referers.add(self.headers.get("Referer"))
            path, _, query = self.path.partition("?")
            with server.lock:
                server.paths.append(path)
            try:
                if path.endswith("/wms"):
                    params = {k.upper(): v[0] for k, v in parse_qs(query).items()}
                    if params.get("REQUEST") == "GetCapabilities":
                        self._send(server.capabilities(), "text/xml")
                        return
                    png, key = server.wms_png(params), (0, 0, 0)
                elif path.split("/")[-2] == "q":
                    key = quadkey_tile(path.split("/")[-1].split(".")[0])
                    png = server.tile_png(*key)
                else:
                    z, x, name = path.strip("/").split("/")[-3:]
                    key = (int(z), int(x), int(name.split(".")[0].removesuffix("@2x")))
                    png = server.tile_png(*key)
            except (ValueError, KeyError):
                png = None
            if png is None:
                self.send_response(404)
                self.end_headers()
                return
            with server.lock:
                server.served.append(key)
                server.bytes_served += len(png)
            self._send(png, "image/png")

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            return None

    return Handler


@contextmanager
def serve_tiles(
    source: Path, zoom: int, flip_y: bool = False, delay_s: float = 0.0, tile: int = TILE
) -> Iterator[TileServer]:
    """A running server for ``source``; its ``url`` is an XYZ template, ``quadkey_url`` the
    same tiles named by {q}, ``wms_url`` a WMS."""
    tiles = TileServer(source, zoom, flip_y, delay_s, tile)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(tiles))
    root = server_root(httpd)
    tiles.url = f"{root}/tiles/{{z}}/{{x}}/{{y}}.png"
    tiles.quadkey_url = f"{root}/q/{{q}}.png"
    tiles.wms_url = f"{root}/wms"
    with running(httpd):
        yield tiles


def server_root(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


@contextmanager
def running(httpd: ThreadingHTTPServer) -> Iterator[None]:
    """``httpd`` serving on a daemon thread until the block ends, then closed."""
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        httpd.shutdown()
        httpd.server_close()


def web_mosaic(
    path: Path, zoom: int, tx: int, ty: int, cols: int, rows: int, seed: int = 0, tile: int = TILE
) -> Path:
    """A seeded RGB GeoTIFF in EPSG:3857 covering ``tile``-pixel tiles ``tx..``, ``ty..`` at
    ``zoom`` (pixels on the zoom's lattice): smooth gradients plus blocks, so PNG stays small."""
    from osgeo import osr

    rng = np.random.default_rng(seed)
    w, h = cols * tile, rows * tile
    res = pixel_size(zoom, tile)
    yy, xx = np.mgrid[0:h, 0:w]
    blocks = rng.integers(0, 120, (h // 16 + 1, w // 16 + 1))[yy // 16, xx // 16]
    bands = [(xx * 255 // w), (yy * 255 // h), blocks + 60]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, 3, gdal.GDT_Byte)
    ds.SetGeoTransform((-HALF + tx * tile * res, res, 0.0, HALF - ty * tile * res, 0.0, -res))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(3857)
    ds.SetProjection(srs.ExportToWkt())
    for i, band in enumerate(bands, start=1):
        ds.GetRasterBand(i).WriteArray(band.astype(np.uint8))
    ds = None
    return path
