"""Online imagery as input: an XYZ service on 127.0.0.1 fetched into a GeoTIFF at the
model's resolution (engine/rasters/fetch.py, tiles.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_data import real_data
from helpers_tiles import HALF, pixel_size, serve_tiles, web_mosaic
from osgeo import gdal, osr

from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.engine.rasters.fetch import FetchRequest, fetch_xyz
from map_refiner.engine.rasters.tiles import XyzSource, choose_zoom, plan_tiles, xyz_tile_size

gdal.UseExceptions()
ZOOM, TX, TY = 18, 215000, 114000  # a zoom-18 spot near 24.5° N, as Xiamen's mosaic


@pytest.fixture
def mosaic(tmp_path: Path) -> Path:
    return web_mosaic(tmp_path / "mosaic.tif", ZOOM, TX, TY, cols=3, rows=2)


def window_bbox(src: Path, col: int, row: int, w: int, h: int) -> tuple[float, ...]:
    gt = gdal.Open(str(src)).GetGeoTransform()
    return (
        gt[0] + col * gt[1],
        gt[3] + (row + h) * gt[5],
        gt[0] + (col + w) * gt[1],
        gt[3] + row * gt[5],
    )


def assert_fetched_window(out: Path, src: Path, col: int, row: int, w: int, h: int) -> None:
    """``out`` is exactly the pixels and the grid of ``src``'s window."""
    got, want = gdal.Open(str(out)), gdal.OpenEx(str(src), gdal.OF_RASTER | gdal.OF_READONLY)
    gt = want.GetGeoTransform()
    assert (got.RasterXSize, got.RasterYSize, got.RasterCount) == (w, h, 3)
    expected_gt = (gt[0] + col * gt[1], gt[1], 0.0, gt[3] + row * gt[5], 0.0, gt[5])
    assert np.allclose(got.GetGeoTransform(), expected_gt, rtol=0, atol=1e-3)
    assert got.GetSpatialRef().GetAuthorityCode(None) == "3857"
    np.testing.assert_array_equal(got.ReadAsArray(), want.ReadAsArray(col, row, w, h))


def test_fetch_matches_the_served_raster_and_counts_tiles(mosaic: Path, tmp_path: Path) -> None:
    with serve_tiles(mosaic, ZOOM) as server:
        out = tmp_path / "fetched.tif"
        bbox = window_bbox(mosaic, 100, 50, 500, 350)
        seen: list[float] = []
        result = fetch_xyz(
            FetchRequest(XyzSource(server.url), bbox, "EPSG:3857", 0.6, out), seen.append
        )
    assert result.path == out and not result.cached and result.zoom == ZOOM
    assert result.tiles == len(server.served) == 6  # 500 x 350 px from col 100: 3 x 2 tiles
    assert result.bytes == server.bytes_served
    assert (result.width, result.height) == (500, 350)
    assert seen and seen[-1] == pytest.approx(1.0)
    assert_fetched_window(out, mosaic, 100, 50, 500, 350)
    assert "Fetched 6 tiles (10 kB, 500 x 350 px at 0.55 m, zoom 18)" in result.describe()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fetched.tif", "mosaic.tif"]


def test_the_same_extent_reuses_the_cached_geotiff(mosaic: Path, tmp_path: Path) -> None:
    out = tmp_path / "fetched.tif"
    bbox = window_bbox(mosaic, 10, 10, 200, 200)
    with serve_tiles(mosaic, ZOOM) as server:
        fetch_xyz(FetchRequest(XyzSource(server.url), bbox, "EPSG:3857", 0.6, out))
        first = len(server.served)
        again = fetch_xyz(FetchRequest(XyzSource(server.url), bbox, "EPSG:3857", 0.6, out))
        assert again.cached and again.tiles == 0 and len(server.served) == first
        assert "Reused" in again.describe()
        other = window_bbox(mosaic, 300, 10, 200, 200)  # another extent: never overwritten
        with pytest.raises(MapRefinerError, match="already exists"):
            fetch_xyz(FetchRequest(XyzSource(server.url), other, "EPSG:3857", 0.6, out))


def test_an_extent_in_another_crs_is_covered(mosaic: Path, tmp_path: Path) -> None:
    minx, miny, maxx, maxy = window_bbox(mosaic, 200, 100, 300, 300)
    wgs, merc = osr.SpatialReference(), osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    merc.ImportFromEPSG(3857)
    for ref in (wgs, merc):
        ref.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    bbox = osr.CoordinateTransformation(merc, wgs).TransformBounds(minx, miny, maxx, maxy, 21)
    with serve_tiles(mosaic, ZOOM) as server:
        result = fetch_xyz(
            FetchRequest(XyzSource(server.url), bbox, "EPSG:4326", 0.6, tmp_path / "f.tif")
        )
    gt = gdal.Open(str(result.path)).GetGeoTransform()
    assert gt[0] <= minx + 1e-6 and gt[3] >= maxy - 1e-6
    assert gt[0] + result.width * gt[1] >= maxx - 1e-6
    assert result.width - 300 <= 2 and result.height - 300 <= 2


def test_tms_rows_from_the_south(mosaic: Path, tmp_path: Path) -> None:
    with serve_tiles(mosaic, ZOOM, flip_y=True) as server:
        url = server.url.replace("{y}", "{-y}")
        out = tmp_path / "tms.tif"
        fetch_xyz(
            FetchRequest(XyzSource(url), window_bbox(mosaic, 0, 0, 300, 300), "EPSG:3857", 0.6, out)
        )
    assert_fetched_window(out, mosaic, 0, 0, 300, 300)


def test_zoom_is_the_coarsest_as_fine_as_the_model() -> None:
    source = XyzSource("http://x/{z}/{x}/{y}.png", 0, 19)
    assert choose_zoom(0.6, 24.5, source) == 18  # 0.54 m on the ground; zoom 17 is 1.09 m
    assert choose_zoom(1.0, 0.0, source) == 18  # 0.60 m at the equator, 17 is 1.19 m
    assert choose_zoom(2.0, 60.0, source) == 16
    assert choose_zoom(0.1, 24.5, XyzSource("http://x/{z}/{x}/{y}", 0, 17)) == 17  # capped
    px = pixel_size(18)
    plan = plan_tiles((-5 * px, -5 * px, 5 * px, 5 * px), 1.0, source)
    assert plan.window[2:] == (10, 10) and plan.tiles == 4  # the equator and meridian meet


def test_too_many_tiles_are_refused_before_any_request(mosaic: Path, tmp_path: Path) -> None:
    with serve_tiles(mosaic, ZOOM) as server:
        request = FetchRequest(
            XyzSource(server.url),
            window_bbox(mosaic, 0, 0, 768, 512),
            "EPSG:3857",
            0.6,
            tmp_path / "big.tif",
            max_tiles=4,
        )
        with pytest.raises(MapRefinerError, match="needs 6 tiles at zoom 18.*limit is 4.*Zoom in"):
            fetch_xyz(request)
        assert server.served == []
    assert not (tmp_path / "big.tif").exists()


def test_cancel_leaves_nothing(mosaic: Path, tmp_path: Path) -> None:
    calls: list[float] = []
    with serve_tiles(mosaic, ZOOM) as server:
        request = FetchRequest(
            XyzSource(server.url),
            window_bbox(mosaic, 0, 0, 768, 512),
            "EPSG:3857",
            0.6,
            tmp_path / "cancelled.tif",
        )
        with pytest.raises(CancelledError):
            fetch_xyz(request, calls.append, lambda: len(calls) > 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosaic.tif"]


def test_progress_and_cancel_come_after_each_row_of_tiles(mosaic: Path, tmp_path: Path) -> None:
    """GDAL copies the window one row of tiles at a time (fetch.swath_bytes): progress after
    each row, and a cancel after the first row stops before the second is asked for."""
    with serve_tiles(mosaic, ZOOM) as server:
        source, bbox = XyzSource(server.url), window_bbox(mosaic, 0, 0, 768, 512)
        seen: list[tuple[float, int]] = []
        fetch_xyz(
            FetchRequest(source, bbox, "EPSG:3857", 0.6, tmp_path / "rows.tif"),
            lambda f: seen.append((f, len(server.served))),
        )
        assert seen == [(0.0, 0), (0.5, 3), (1.0, 6)]
        server.served.clear()
        with pytest.raises(CancelledError):
            fetch_xyz(
                FetchRequest(source, bbox, "EPSG:3857", 0.6, tmp_path / "cancelled.tif"),
                None,
                lambda: len(server.served) > 0,
            )
        assert len(server.served) == 3  # the first row only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosaic.tif", "rows.tif"]
    assert gdal.GetConfigOption("GDAL_SWATH_SIZE") is None  # left as it was


def test_a_service_without_the_area_is_one_clear_error(mosaic: Path, tmp_path: Path) -> None:
    with serve_tiles(mosaic, ZOOM) as server:
        bbox = (0.0, 0.0, 100.0, 100.0)  # far from the mosaic: every tile 404
        with pytest.raises(MapRefinerError, match="gave no image for this extent at zoom 18"):
            fetch_xyz(
                FetchRequest(XyzSource(server.url), bbox, "EPSG:3857", 0.6, tmp_path / "n.tif")
            )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosaic.tif"]


@pytest.mark.parametrize(
    ("url", "size", "said"),
    [
        ("http://x/{q}/{x}/{y}.png", 256, "names the tile twice, by {q} and by {x}/{y}"),
        ("http://x/{z}/{x}.png", 256, "lacks {y}.*{z}/{x}/{y} or by a quadkey {q}"),
        ("http://x/{z}/{x}/{y}.png", 384, "Tiles of 384 px are not supported.*256 or 512"),
    ],
)
def test_unusable_templates_are_refused(url: str, size: int, said: str, tmp_path: Path) -> None:
    source = XyzSource(url, tile_size=size)
    with pytest.raises(MapRefinerError, match=said):
        fetch_xyz(FetchRequest(source, (0, 0, 10, 10), "EPSG:3857", 0.6, tmp_path / "o.tif"))
    assert list(tmp_path.iterdir()) == []


def test_quadkey_tiles_through_gdals_virtualearth_driver(mosaic: Path, tmp_path: Path) -> None:
    """A Bing-style {q} URL: the same pixels as {x}/{y}/{z}, each tile asked by its quadkey;
    {z} beside {q} is the zoom written in."""
    bbox = window_bbox(mosaic, 100, 50, 500, 350)
    with serve_tiles(mosaic, ZOOM) as server:
        url = server.quadkey_url.replace("/q/", "/z{z}/q/")
        result = fetch_xyz(FetchRequest(XyzSource(url), bbox, "EPSG:3857", 0.6, tmp_path / "q.tif"))
    assert result.zoom == ZOOM and result.tiles == len(server.served) == 6
    assert_fetched_window(result.path, mosaic, 100, 50, 500, 350)
    quadkeys = {p.split("/")[-1].split(".")[0] for p in server.paths}
    assert len(quadkeys) == 6 and all(len(q) == ZOOM for q in quadkeys)
    assert {p.split("/")[1] for p in server.paths} == {f"z{ZOOM}"}


def test_subdomains_are_asked_of_the_first_one(mosaic: Path, tmp_path: Path) -> None:
    """{s}: QGIS does not expand it and GDAL has no placeholder for it; every tile is asked
    of subdomain "a", in an XYZ and in a quadkey URL alike."""
    bbox = window_bbox(mosaic, 0, 0, 300, 300)
    with serve_tiles(mosaic, ZOOM) as server:
        for name, url in (("xyz", server.url), ("q", server.quadkey_url)):
            url = url.replace("/tiles/", "/{s}/tiles/").replace("/q/", "/{s}/q/")
            out = tmp_path / f"{name}.tif"
            fetch_xyz(FetchRequest(XyzSource(url), bbox, "EPSG:3857", 0.6, out))
            assert_fetched_window(out, mosaic, 0, 0, 300, 300)
    assert server.paths and {p.split("/")[1] for p in server.paths} == {"a"}


def test_512_px_tiles_cover_the_ground_of_256_px_ones(tmp_path: Path) -> None:
    """High-DPI tiles: zoom 17's 512 px tiles hold zoom 18's pixels; the plan, GDAL's blocks
    and the requests follow the source's tile size."""
    mosaic = web_mosaic(tmp_path / "m512.tif", ZOOM - 1, TX // 2, TY // 2, 2, 1, tile=512)
    bbox = window_bbox(mosaic, 100, 50, 500, 350)
    source_url = ""
    with serve_tiles(mosaic, ZOOM - 1, tile=512) as server:
        source_url = server.url.replace(".png", "@2x.png")
        source = XyzSource(source_url, tile_size=xyz_tile_size(source_url))
        assert source.tile_size == 512
        request = FetchRequest(source, bbox, "EPSG:3857", 0.6, tmp_path / "hi.tif")
        plan = request.plan()
        result = fetch_xyz(request)
    assert (plan.tile_size, plan.tiles, plan.window) == (
        512,
        2,
        (TX * 256 + 100, TY * 256 + 50, 500, 350),
    )
    assert result.zoom == ZOOM - 1 and result.tiles == len(server.served) == 2
    assert {z for z, _x, _y in server.served} == {ZOOM - 1}
    standard = FetchRequest(XyzSource(server.url), bbox, "EPSG:3857", 0.6, tmp_path / "s.tif")
    assert standard.plan().zoom == ZOOM  # zoom 18's pixels, in a quarter of the tiles
    assert result.ground_m == pytest.approx(standard.plan().ground_m, rel=1e-12)
    assert_fetched_window(result.path, mosaic, 100, 50, 500, 350)


def test_cli_fetch_of_512_px_tiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from map_refiner.cli import main

    mosaic = web_mosaic(tmp_path / "m512.tif", ZOOM - 1, TX // 2, TY // 2, 2, 1, tile=512)
    bbox = ",".join(f"{v!r}" for v in window_bbox(mosaic, 300, 40, 400, 300))
    out = tmp_path / "cli.tif"
    with serve_tiles(mosaic, ZOOM - 1, tile=512) as server:
        args = ["fetch", server.url, "--bbox", bbox, "--crs", "EPSG:3857", "--out", str(out)]
        assert main([*args, "--tile-size", "512"]) == 0
        assert "Fetched 2 tiles" in capsys.readouterr().out
    assert_fetched_window(out, mosaic, 300, 40, 400, 300)
    assert main([*args[:-1], str(tmp_path / "o.tif"), "--tile-size", "300"]) == 2
    assert "--tile-size: invalid choice" in capsys.readouterr().err


def test_tile_size_as_qgis_records_it() -> None:
    assert xyz_tile_size("http://x/{z}/{x}/{y}.png") == 256
    assert xyz_tile_size("http://x/{z}/{x}/{y}@2x.png") == 512  # unknown resolution, @2x name
    assert xyz_tile_size("http://x/{z}/{x}/{y}.png", 2.0) == 512  # Tile resolution: High
    assert xyz_tile_size("http://x/{z}/{x}/{y}@2x.png", 1.0) == 256  # Standard, said so
    hi = XyzSource("http://x/{z}/{x}/{y}", 0, 22, tile_size=512)
    assert choose_zoom(0.6, 24.5, hi) == 17 and hi.max_zoom == 21
    assert choose_zoom(0.01, 24.5, hi) == 21  # 512 * 2**21 px: still one GDAL raster


@pytest.mark.parametrize(("served", "expected"), [(512, 256), (256, 512)])
def test_tiles_of_the_wrong_size_say_which_setting_to_change(
    served: int, expected: int, tmp_path: Path
) -> None:
    """Tiles served at one size, the layer saying the other: zoom 17's tiles either way."""
    scale = served // 256
    mosaic = web_mosaic(tmp_path / "m.tif", ZOOM - 1, TX // 2, TY // 2, 2 // scale, 1, tile=served)
    bbox = window_bbox(mosaic, 0, 0, 200, 200)
    resolution = 1.2 if expected == 256 else 0.6  # zoom 17 at 256 px, or at 512 px
    with serve_tiles(mosaic, ZOOM - 1, tile=served) as server:
        source = XyzSource(server.url, tile_size=expected)
        request = FetchRequest(source, bbox, "EPSG:3857", resolution, tmp_path / "o.tif")
        said = f"not {expected} px images.*Tile resolution.*--tile-size {served}"
        with pytest.raises(MapRefinerError, match=said):
            fetch_xyz(request)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tif"]


def test_xiamen_tiles_fetched_back_at_the_model_resolution(tmp_path: Path) -> None:
    """The Xiamen mosaic is zoom-18 web-map imagery: tiles cut from it and fetched back at
    the bundled model's 0.6 m give its own pixels on its own grid (read only)."""
    xiamen = real_data("xiamen", "xiamen_rgb.tif")
    ds = gdal.OpenEx(str(xiamen), gdal.OF_RASTER | gdal.OF_READONLY)
    gt = ds.GetGeoTransform()
    assert gt[1] == pytest.approx(pixel_size(18))
    lattice = (gt[0] + HALF) / gt[1] / 256
    assert lattice == pytest.approx(round(lattice), abs=1e-6)  # on the tile lattice
    col, row, w, h = 3000, 3500, 700, 500
    with serve_tiles(xiamen, 18) as server:
        result = fetch_xyz(
            FetchRequest(
                XyzSource(server.url, 0, 19),
                window_bbox(xiamen, col, row, w, h),
                "EPSG:3857",
                0.6,
                tmp_path / "xiamen_view.tif",
            )
        )
    assert result.zoom == 18 and result.tiles == len(server.served)
    assert result.ground_m == pytest.approx(0.543, abs=0.001)
    assert_fetched_window(result.path, xiamen, col, row, w, h)


def test_cli_fetch(mosaic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from map_refiner.cli import main

    bbox = ",".join(f"{v!r}" for v in window_bbox(mosaic, 50, 60, 300, 200))
    with serve_tiles(mosaic, ZOOM) as server:
        out = tmp_path / "cli.tif"
        args = ["fetch", server.url, "--bbox", bbox, "--crs", "EPSG:3857", "--out", str(out)]
        assert main(args) == 0  # the bundled model's 0.6 m: zoom 18
        assert f"Fetched {len(server.served)} tiles" in capsys.readouterr().out
        assert main([*args[:-2], "--out", str(tmp_path / "big.tif"), "--max-tiles", "1"]) == 2
        assert "--max-tiles" in capsys.readouterr().err
        wms = tmp_path / "wms.tif"
        wms_args = [server.wms_url, "--wms", "mosaic", "--bbox", bbox, "--crs", "EPSG:3857"]
        assert main(["fetch", *wms_args, "--out", str(wms)]) == 0
        assert "Fetched" in capsys.readouterr().out and wms.exists()
    assert_fetched_window(out, mosaic, 50, 60, 300, 200)
    assert main(["fetch", "http://x/{z}/{x}/{y}", "--bbox", "1,2,3", "--out", "o.tif"]) == 2
    assert "--bbox must be minx,miny,maxx,maxy" in capsys.readouterr().err


def test_a_wms_layer_is_fetched_on_a_grid_at_the_model_resolution(
    mosaic: Path, tmp_path: Path
) -> None:
    from map_refiner.engine.rasters.wms import WmsSource, ground_per_unit

    bbox = window_bbox(mosaic, 100, 50, 500, 350)
    merc = osr.SpatialReference()
    merc.ImportFromEPSG(3857)
    merc.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    centre = ((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2)
    ground = pixel_size(ZOOM) * ground_per_unit(merc, *centre)[0]  # the mosaic's own pixels
    with serve_tiles(mosaic, ZOOM) as server:
        source = WmsSource(server.wms_url, "mosaic", "EPSG:3857")
        out = tmp_path / "wms.tif"
        request = FetchRequest(source, bbox, "EPSG:3857", ground, out)
        result = fetch_xyz(request)
    blocks = request.plan().tiles  # 256-pixel requests: 501 x 351 px (the box snapped out)
    assert result.zoom is None and result.tiles == len(server.served) == blocks == 4
    assert result.bytes == server.bytes_served
    assert "Fetched 4 tiles" in result.describe() and "zoom" not in result.describe()
    got = gdal.Open(str(out))
    gt = got.GetGeoTransform()
    assert gt[1] == pytest.approx(pixel_size(ZOOM), rel=1e-6)
    assert gt[0] <= bbox[0] and gt[3] >= bbox[3]
    assert abs(got.RasterXSize - 500) <= 1 and abs(got.RasterYSize - 350) <= 1
    src = gdal.Open(str(mosaic))
    sgt = src.GetGeoTransform()
    col, row = round((gt[0] - sgt[0]) / sgt[1]), round((gt[3] - sgt[3]) / sgt[5])
    w, h = min(got.RasterXSize, 500), min(got.RasterYSize, 350)
    same = got.ReadAsArray(0, 0, w, h) == src.ReadAsArray(col, row, w, h)
    assert same.mean() > 0.99  # the mosaic's grid, sampled back


def test_a_referer_is_sent_and_an_unreachable_service_is_one_line(
    mosaic: Path, tmp_path: Path
) -> None:
    bbox = window_bbox(mosaic, 0, 0, 100, 100)
    with serve_tiles(mosaic, ZOOM) as server:
        source = XyzSource(server.url, referer="https://example.org/map")
        fetch_xyz(FetchRequest(source, bbox, "EPSG:3857", 0.6, tmp_path / "r.tif"))
    assert server.referers == {"https://example.org/map"}
    dead = XyzSource(server.url)  # the server is gone
    with pytest.raises(MapRefinerError, match="Could not download the imagery from http.*network"):
        fetch_xyz(FetchRequest(dead, bbox, "EPSG:3857", 0.6, tmp_path / "dead.tif"))
    assert not (tmp_path / "dead.tif").exists()
