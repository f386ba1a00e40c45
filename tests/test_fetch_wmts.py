"""Online imagery as input: a WMTS layer (capabilities and tiles from a folder on
127.0.0.1) fetched through GDAL's WMTS driver at the model's resolution (engine/rasters/
wmts.py, fetch.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_tiles import pixel_size, web_mosaic
from helpers_wmts import serve_wmts
from osgeo import gdal
from test_fetch import TX, TY, ZOOM, assert_fetched_window, window_bbox

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.rasters.fetch import FetchRequest, fetch_key, fetch_xyz
from map_refiner.engine.rasters.wms import EARTH_RADIUS_M
from map_refiner.engine.rasters.wmts import WmtsSource, plan_wmts

gdal.UseExceptions()


@pytest.fixture
def mosaic(tmp_path: Path) -> Path:
    return web_mosaic(tmp_path / "mosaic.tif", ZOOM, TX, TY, cols=3, rows=2)


def test_a_wmts_layer_is_fetched_from_the_matrix_as_fine_as_the_model(
    mosaic: Path, tmp_path: Path
) -> None:
    """Tile matrix 18 (0.55 m here; 17 is 1.1 m) for a 0.6 m model: its own pixels over
    the extent, on its own grid, the tiles counted as served."""
    bbox = window_bbox(mosaic, 100, 50, 500, 350)
    with serve_wmts(mosaic, ZOOM, tmp_path / "served") as wmts:
        source = WmtsSource(wmts.capabilities_url, "mosaic", "g", "default", "image/png")
        request = FetchRequest(source, bbox, "EPSG:3857", 0.6, tmp_path / "wmts.tif")
        result = fetch_xyz(request)
        assert not request.plans_offline and len(fetch_key(request)) == 12
    assert result.zoom == ZOOM and result.tiles == len(wmts.tiles_requested) == 6
    assert result.bytes == wmts.bytes_served
    assert result.ground_m == pytest.approx(request_ground(bbox), rel=1e-6)
    assert "Fetched 6 tiles" in result.describe() and "zoom 18" in result.describe()
    assert_fetched_window(result.path, mosaic, 100, 50, 500, 350)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosaic.tif", "served", "wmts.tif"]


def request_ground(bbox: tuple[float, ...]) -> float:
    """Zoom 18's pixel on the ground at the box's centre: EPSG:3857's scale is 1/cos, on
    a sphere of the mean Earth radius (the WMS path's ground_per_unit), not the WGS84 one."""
    import math

    lat = math.atan(math.sinh((bbox[1] + bbox[3]) / 2 / 20037508.342789244 * math.pi))
    return pixel_size(ZOOM) * math.cos(lat) * EARTH_RADIUS_M / 6378137.0


def test_the_tile_matrix_follows_the_models_resolution(mosaic: Path, tmp_path: Path) -> None:
    bbox = window_bbox(mosaic, 100, 50, 500, 350)
    with serve_wmts(mosaic, ZOOM, tmp_path / "served") as wmts:
        source = WmtsSource(wmts.capabilities_url, "mosaic", "g")
        coarse = plan_wmts(bbox, "EPSG:3857", 1.2, source)
        fine = plan_wmts(bbox, "EPSG:3857", 0.1, source)  # finer than any: the finest
        assert wmts.tiles_requested == []  # planning reads the capabilities only
    assert coarse.zoom == ZOOM - 1 and coarse.window[2:] == (250, 175)
    assert coarse.ground_m == pytest.approx(2 * request_ground(bbox), rel=1e-6)
    assert fine.zoom == 19 and fine.window[2:] == (1000, 700)


def test_the_same_wmts_extent_reuses_the_geotiff_even_offline(mosaic: Path, tmp_path: Path) -> None:
    bbox = window_bbox(mosaic, 10, 10, 200, 200)
    out = tmp_path / "w.tif"
    with serve_wmts(mosaic, ZOOM, tmp_path / "served") as wmts:
        source = WmtsSource(wmts.capabilities_url, "mosaic", "g", referer="https://example.org/")
        fetch_xyz(FetchRequest(source, bbox, "EPSG:3857", 0.6, out))
        asked = len(wmts.requested)
        first = fetch_xyz(FetchRequest(source, bbox, "EPSG:3857", 0.6, out))
        assert first.cached and len(wmts.requested) == asked  # not even the capabilities
    assert wmts.referers == {"https://example.org/"}
    offline = fetch_xyz(FetchRequest(source, bbox, "EPSG:3857", 0.6, out))  # service gone
    assert offline == first and (offline.zoom, offline.width) == (ZOOM, 200)
    assert offline.describe().startswith("Reused the fetched image w.tif (200 x 200 px at 0.55")


def test_a_missing_layer_or_service_is_one_clear_line(mosaic: Path, tmp_path: Path) -> None:
    bbox = window_bbox(mosaic, 0, 0, 100, 100)
    with serve_wmts(mosaic, ZOOM, tmp_path / "served") as wmts:
        wrong = WmtsSource(wmts.capabilities_url, "roads", "g")
        with pytest.raises(MapRefinerError, match="WMTS layer roads .*no such layer.*Browser"):
            fetch_xyz(FetchRequest(wrong, bbox, "EPSG:3857", 0.6, tmp_path / "o.tif"))
        elsewhere = (0.0, 0.0, 100.0, 100.0)  # far from the tiles: every one 404
        source = WmtsSource(wmts.capabilities_url, "mosaic", "g")
        with pytest.raises(MapRefinerError, match="gave no image for this extent at zoom 18"):
            fetch_xyz(FetchRequest(source, elsewhere, "EPSG:3857", 0.6, tmp_path / "o.tif"))
    gone = WmtsSource(wmts.capabilities_url, "mosaic", "g")
    with pytest.raises(MapRefinerError, match="Could not open the WMTS layer mosaic"):
        fetch_xyz(FetchRequest(gone, bbox, "EPSG:3857", 0.6, tmp_path / "o.tif"))
    with pytest.raises(MapRefinerError, match="lacks a URL, a layer or a tile matrix set"):
        fetch_xyz(
            FetchRequest(WmtsSource("", "m", "g"), bbox, "EPSG:3857", 0.6, tmp_path / "o.tif")
        )
    assert not (tmp_path / "o.tif").exists()


def test_a_kvp_endpoint_asks_for_the_capabilities() -> None:
    rest = WmtsSource("http://h/wmts/1.0.0/WMTSCapabilities.xml", "l", "g")
    assert rest.capabilities_url == rest.url
    kvp = WmtsSource("http://h/wmts?SERVICE=WMTS&REQUEST=GetCapabilities", "l", "g")
    assert kvp.capabilities_url == kvp.url
    for url in ("http://h/wmts", "http://h/wmts?", "http://h/wmts?SERVICE=WMTS"):
        asked = WmtsSource(url, "l", "g").capabilities_url
        assert asked == "http://h/wmts?SERVICE=WMTS&REQUEST=GetCapabilities", url
    asked = WmtsSource("http://h/wmts?map=a", "l", "g").capabilities_url
    assert asked == "http://h/wmts?map=a&SERVICE=WMTS&REQUEST=GetCapabilities"


def test_cli_fetch_from_a_wmts(
    mosaic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from map_refiner.cli import main

    bbox = ",".join(f"{v!r}" for v in window_bbox(mosaic, 50, 60, 300, 200))
    out = tmp_path / "cli.tif"
    with serve_wmts(mosaic, ZOOM, tmp_path / "served") as wmts:
        args = ["fetch", wmts.capabilities_url, "--bbox", bbox, "--crs", "EPSG:3857"]
        assert main([*args, "--wmts", "mosaic", "--tile-matrix-set", "g", "--out", str(out)]) == 0
        assert f"Fetched {len(wmts.tiles_requested)} tiles" in capsys.readouterr().out
        assert main([*args, "--wmts", "mosaic", "--out", str(tmp_path / "o.tif")]) == 2
        assert "--tile-matrix-set ID" in capsys.readouterr().err
    assert_fetched_window(out, mosaic, 50, 60, 300, 200)


def test_a_kvp_wmts_gives_the_pixels_of_the_restful_one(mosaic: Path, tmp_path: Path) -> None:
    """A service whose capabilities (asked by KVP of its endpoint, as QGIS records such a
    layer) offer GetTile only by KVP, with no ResourceURL: the same tile matrix, tiles and
    pixels as the RESTful route, every tile asked by a GetTile with query parameters."""
    bbox = window_bbox(mosaic, 100, 50, 500, 350)
    with serve_wmts(mosaic, ZOOM, tmp_path / "served") as wmts:
        rest = WmtsSource(wmts.capabilities_url, "mosaic", "g", "default", "image/png")
        restful = fetch_xyz(FetchRequest(rest, bbox, "EPSG:3857", 0.6, tmp_path / "rest.tif"))
        rest_tiles = sorted(wmts.tiles_requested)
        assert wmts.kvp_tiles == []
        del wmts.requested[:]
        kvp = WmtsSource(wmts.kvp_url, "mosaic", "g", "default", "image/png")
        assert kvp.capabilities_url == f"{wmts.kvp_url}?SERVICE=WMTS&REQUEST=GetCapabilities"
        request = FetchRequest(kvp, bbox, "EPSG:3857", 0.6, tmp_path / "kvp.tif")
        result = fetch_xyz(request)
    assert "/kvp/capabilities.xml" in wmts.requested  # the KVP document, not the RESTful one
    assert "/1.0.0/WMTSCapabilities.xml" not in wmts.requested
    assert sorted(wmts.tiles_requested) == rest_tiles and len(wmts.kvp_tiles) == 6
    for query in wmts.kvp_tiles:
        said = (query["SERVICE"], query["REQUEST"], query["TILEMATRIX"])
        assert said == ("WMTS", "GetTile", "18")
    assert (result.zoom, result.tiles, result.bytes) == (restful.zoom, 6, restful.bytes)
    assert (result.width, result.height) == (restful.width, restful.height) == (500, 350)
    kvp_ds, rest_ds = gdal.Open(str(result.path)), gdal.Open(str(restful.path))
    assert kvp_ds.GetGeoTransform() == rest_ds.GetGeoTransform()
    np.testing.assert_array_equal(kvp_ds.ReadAsArray(), rest_ds.ReadAsArray())
    assert_fetched_window(result.path, mosaic, 100, 50, 500, 350)
