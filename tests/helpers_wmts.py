"""A local WMTS for tests: GetCapabilities documents (one layer ``mosaic`` in a
GoogleMapsCompatible-like tile matrix set ``g``) and 256 px PNG tiles cut into a folder
from an EPSG:3857 raster on one zoom level's lattice, served by http.server on 127.0.0.1
both RESTfully (a ResourceURL template) and by KVP (GetTile with query parameters, from
a second capabilities document whose OperationsMetadata offers only that)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from helpers_tiles import HALF, TILE, TileServer, pixel_size, running, server_root
from osgeo import gdal

gdal.UseExceptions()
METRES_PER_PIXEL_AT_SCALE_1 = 0.28e-3  # the OGC standard pixel: scale = resolution / 0.28 mm


@dataclass
class Wmts:
    """What a running WMTS serves: ``capabilities_url`` (RESTful), ``kvp_url`` (the KVP
    endpoint, as QGIS records a KVP service: GetCapabilities and GetTile are asked of it
    with query parameters), and the tile paths asked for (a KVP GetTile as the RESTful path
    of the same tile; its parameters in ``kvp_tiles``)."""

    folder: Path
    capabilities_url: str = ""
    kvp_url: str = ""
    requested: list[str] = field(default_factory=list)
    kvp_tiles: list[dict[str, str]] = field(default_factory=list)
    referers: set[str | None] = field(default_factory=set)

    @property
    def tiles_requested(self) -> list[str]:
        return [p for p in self.requested if p.endswith(".png")]

    @property
    def bytes_served(self) -> int:
        """The size of every tile asked for that the folder holds."""
        files = [self.folder / p.lstrip("/") for p in self.tiles_requested]
        return sum(f.stat().st_size for f in files if f.is_file())


def kvp_operations(kvp_url: str) -> str:
    """OperationsMetadata offering GetCapabilities and GetTile at ``kvp_url`` by KVP only."""
    get = (
        f'<ows:Get xlink:href="{kvp_url}?"><ows:Constraint name="GetEncoding">'
        "<ows:AllowedValues><ows:Value>KVP</ows:Value></ows:AllowedValues>"
        "</ows:Constraint></ows:Get>"
    )
    return (
        "<ows:OperationsMetadata>"
        + "".join(
            f'<ows:Operation name="{op}"><ows:DCP><ows:HTTP>{get}</ows:HTTP></ows:DCP>'
            "</ows:Operation>"
            for op in ("GetCapabilities", "GetTile")
        )
        + "</ows:OperationsMetadata>"
    )


def capabilities_xml(root: str, zooms: range, tile: int = TILE, kvp_url: str = "") -> str:
    """WMTS 1.0.0 capabilities: layer ``mosaic``, style ``default``, PNG tiles at
    ``root/tiles/{TileMatrix}/{TileCol}/{TileRow}.png``, matrices ``zooms`` of set ``g``;
    with ``kvp_url``, no ResourceURL but GetTile by KVP at ``kvp_url`` instead."""
    matrices = "".join(
        f"<TileMatrix><ows:Identifier>{z}</ows:Identifier>"
        f"<ScaleDenominator>{pixel_size(z, tile) / METRES_PER_PIXEL_AT_SCALE_1!r}"
        f"</ScaleDenominator><TopLeftCorner>{-HALF!r} {HALF!r}</TopLeftCorner>"
        f"<TileWidth>{tile}</TileWidth><TileHeight>{tile}</TileHeight>"
        f"<MatrixWidth>{2**z}</MatrixWidth><MatrixHeight>{2**z}</MatrixHeight></TileMatrix>"
        for z in zooms
    )
    template = f"{root}/tiles/{{TileMatrix}}/{{TileCol}}/{{TileRow}}.png"
    resource = f'<ResourceURL format="image/png" resourceType="tile" template="{template}"/>'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Capabilities xmlns="http://www.opengis.net/wmts/1.0" '
        'xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'version="1.0.0">'
        "<ows:ServiceIdentification><ows:Title>test</ows:Title>"
        "<ows:ServiceType>OGC WMTS</ows:ServiceType>"
        "<ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion></ows:ServiceIdentification>"
        f"{kvp_operations(kvp_url) if kvp_url else ''}"
        "<Contents><Layer><ows:Title>mosaic</ows:Title>"
        "<ows:WGS84BoundingBox><ows:LowerCorner>-180 -85</ows:LowerCorner>"
        "<ows:UpperCorner>180 85</ows:UpperCorner></ows:WGS84BoundingBox>"
        "<ows:Identifier>mosaic</ows:Identifier>"
        '<Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style>'
        "<Format>image/png</Format>"
        "<TileMatrixSetLink><TileMatrixSet>g</TileMatrixSet></TileMatrixSetLink>"
        f"{'' if kvp_url else resource}</Layer><TileMatrixSet><ows:Identifier>g</ows:Identifier>"
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
    """``source``'s tiles at ``zoom`` and the capabilities, from ``folder`` over HTTP:
    RESTful at ``capabilities_url``, by KVP at ``kvp_url``."""
    wmts = Wmts(folder)

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            wmts.referers.add(self.headers.get("Referer"))
            path, _, query = self.path.partition("?")
            if path == "/wmts":
                self.path = kvp_path({k.upper(): v[0] for k, v in parse_qs(query).items()})
                if self.path.startswith("/tiles/"):
                    wmts.kvp_tiles.append({k.upper(): v[0] for k, v in parse_qs(query).items()})
            wmts.requested.append(self.path)
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
    wmts.kvp_url = f"{root}/wmts"
    (folder / "kvp").mkdir(exist_ok=True)
    (folder / "kvp" / "capabilities.xml").write_text(
        capabilities_xml(root, zooms, tile, kvp_url=wmts.kvp_url)
    )
    with running(httpd):
        yield wmts


def kvp_path(query: dict[str, str]) -> str:
    """The file a KVP request asks for (names upper-cased): the KVP capabilities, or the
    tile a GetTile of layer ``mosaic``, style ``default``, set ``g`` and PNG names; any
    other request a path that is not there (404)."""
    if query.get("SERVICE") != "WMTS":
        return "/not-wmts"
    if query.get("REQUEST") == "GetCapabilities":
        return "/kvp/capabilities.xml"
    expected = {"LAYER": "mosaic", "STYLE": "default", "TILEMATRIXSET": "g", "FORMAT": "image/png"}
    if query.get("REQUEST") != "GetTile" or any(query.get(k) != v for k, v in expected.items()):
        return "/not-a-tile"
    try:
        z, row, col = (int(query[k]) for k in ("TILEMATRIX", "TILEROW", "TILECOL"))
    except (KeyError, ValueError):
        return "/not-a-tile"
    return f"/tiles/{z}/{col}/{row}.png"
