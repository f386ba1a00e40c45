"""A local WMTS for tests: a GetCapabilities document (RESTful, one layer ``mosaic`` in a
GoogleMapsCompatible-like tile matrix set ``g``) and 256 px PNG tiles cut into a folder
from an EPSG:3857 raster on one zoom level's lattice, served by http.server on 127.0.0.1."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from helpers_tiles import HALF, TILE, TileServer, pixel_size, running, server_root
from osgeo import gdal

gdal.UseExceptions()
METRES_PER_PIXEL_AT_SCALE_1 = 0.28e-3  # the OGC standard pixel: scale = resolution / 0.28 mm


@dataclass
class Wmts:
    """What a running WMTS serves: ``capabilities_url``, and the tile paths asked for."""

    folder: Path
    capabilities_url: str = ""
    requested: list[str] = field(default_factory=list)
    referers: set[str | None] = field(default_factory=set)

    @property
    def tiles_requested(self) -> list[str]:
        return [p for p in self.requested if p.endswith(".png")]

    @property
    def bytes_served(self) -> int:
        """The size of every tile asked for that the folder holds."""
        files = [self.folder / p.lstrip("/") for p in self.tiles_requested]
        return sum(f.stat().st_size for f in files if f.is_file())


def capabilities_xml(root: str, zooms: range, tile: int = TILE) -> str:
    """WMTS 1.0.0 capabilities: layer ``mosaic``, style ``default``, PNG tiles at
    ``root/tiles/{TileMatrix}/{TileCol}/{TileRow}.png``, matrices ``zooms`` of set ``g``."""
    matrices = "".join(
        f"<TileMatrix><ows:Identifier>{z}</ows:Identifier>"
        f"<ScaleDenominator>{pixel_size(z, tile) / METRES_PER_PIXEL_AT_SCALE_1!r}"
        f"</ScaleDenominator><TopLeftCorner>{-HALF!r} {HALF!r}</TopLeftCorner>"
        f"<TileWidth>{tile}</TileWidth><TileHeight>{tile}</TileHeight>"
        f"<MatrixWidth>{2**z}</MatrixWidth><MatrixHeight>{2**z}</MatrixHeight></TileMatrix>"
        for z in zooms
    )
    template = f"{root}/tiles/{{TileMatrix}}/{{TileCol}}/{{TileRow}}.png"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Capabilities xmlns="http://www.opengis.net/wmts/1.0" '
        'xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'version="1.0.0">'
        "<ows:ServiceIdentification><ows:Title>test</ows:Title>"
        "<ows:ServiceType>OGC WMTS</ows:ServiceType>"
        "<ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion></ows:ServiceIdentification>"
        "<Contents><Layer><ows:Title>mosaic</ows:Title>"
        "<ows:WGS84BoundingBox><ows:LowerCorner>-180 -85</ows:LowerCorner>"
        "<ows:UpperCorner>180 85</ows:UpperCorner></ows:WGS84BoundingBox>"
        "<ows:Identifier>mosaic</ows:Identifier>"
        '<Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style>'
        "<Format>image/png</Format>"
        "<TileMatrixSetLink><TileMatrixSet>g</TileMatrixSet></TileMatrixSetLink>"
        f'<ResourceURL format="image/png" resourceType="tile" template="{template}"/>'
        "</Layer><TileMatrixSet><ows:Identifier>g</ows:Identifier>"
        "<ows:SupportedCRS>urn:ogc:def:crs:EPSG::3857</ows:SupportedCRS>"
        f"{matrices}</TileMatrixSet></Contents></Capabilities>"
    )


def cut_tiles(source: Path, zoom: int, folder: Path, tile: int = TILE) -> int:
    """Every tile of ``source`` at ``zoom`` as ``folder/tiles/z/x/y.png``; how many."""
    ds = gdal.OpenEx(str(source), gdal.OF_RASTER | gdal.OF_READONLY)
    gt = ds.GetGeoTransform()
    res = pixel_size(zoom, tile)
    tx0 = round((gt[0] + HALF) / res) // tile
    ty0 = round((HALF - gt[3]) / res) // tile
    cutter = TileServer(source, zoom, tile=tile)
    count = 0
    for tx in range(tx0, tx0 + ds.RasterXSize // tile + 1):
        for ty in range(ty0, ty0 + ds.RasterYSize // tile + 1):
            png = cutter.tile_png(zoom, tx, ty)
            if png is not None:
                path = folder / "tiles" / str(zoom) / str(tx) / f"{ty}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(png)
                count += 1
    return count


@contextmanager
def serve_wmts(
    source: Path, zoom: int, folder: Path, zooms: range = range(0, 20), tile: int = TILE
) -> Iterator[Wmts]:
    """``source``'s tiles at ``zoom`` and the capabilities, from ``folder`` over HTTP."""
    wmts = Wmts(folder)

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            wmts.requested.append(self.path)
            wmts.referers.add(self.headers.get("Referer"))
            super().do_GET()

        def log_message(self, *_args: object) -> None:
            return None

    handler = functools.partial(Handler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    root = server_root(httpd)
    cut_tiles(source, zoom, folder, tile)
    caps = folder / "1.0.0" / "WMTSCapabilities.xml"
    caps.parent.mkdir(parents=True, exist_ok=True)
    caps.write_text(capabilities_xml(root, zooms, tile))
    wmts.capabilities_url = f"{root}/1.0.0/WMTSCapabilities.xml"
    with running(httpd):
        yield wmts
