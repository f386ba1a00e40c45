"""Raster reading: ground resolution in any CRS, windows, nodata, band choice, data types."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import UTM_GT_05, write_image
from osgeo import gdal

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.rasters.read import (
    EARTH_RADIUS_M,
    at_declared_nodata,
    check_bands,
    ground_resolution,
    open_raster,
    raster_info,
    read_window,
)

gdal.UseExceptions()


def info_of(ds: gdal.Dataset):
    return raster_info(ds)


def mem(array: np.ndarray, gt=UTM_GT_05, epsg=32633, nodata=None) -> gdal.Dataset:
    return write_image("", array, gt, epsg, nodata, driver="MEM")


def sphere_step_m(lat_deg: float, dlon_deg: float, dlat_deg: float):
    """Metres of one pixel step along x and y on the sphere, for small steps."""
    m_per_deg = EARTH_RADIUS_M * math.pi / 180
    return m_per_deg * math.cos(math.radians(lat_deg)) * dlon_deg, m_per_deg * dlat_deg


def test_utm_half_metre_pixels() -> None:
    ds = mem(np.zeros((1, 40, 60), np.uint8))
    rx, ry = ground_resolution(info_of(ds))
    assert rx == pytest.approx(0.5, rel=5e-3)
    assert ry == pytest.approx(0.5, rel=5e-3)


def test_web_mercator_is_scaled_by_cos_latitude() -> None:
    # Xiamen: Web Mercator zoom 18 pixels (0.597 m) at 24.5 N are about 0.54 m on the ground.
    lat = 24.5
    y = 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    gt = (13143000.0, 0.597, 0.0, y + 50 * 0.597, 0.0, -0.597)
    rx, ry = ground_resolution(info_of(mem(np.zeros((1, 100, 100), np.uint8), gt, 3857)))
    expected = 0.597 * math.cos(math.radians(lat))
    assert expected == pytest.approx(0.543, abs=1e-3)
    assert rx == pytest.approx(expected, rel=3e-3)
    assert ry == pytest.approx(expected, rel=3e-3)


def test_geographic_degrees_at_34_south() -> None:
    step = 2e-5
    gt = (20.0, step, 0.0, -34.0 + 50 * step, 0.0, -step)
    rx, ry = ground_resolution(info_of(mem(np.zeros((1, 100, 100), np.uint8), gt, 4326)))
    ex, ey = sphere_step_m(-34.0, step, step)
    assert (ex, ey) == (pytest.approx(1.843, abs=2e-3), pytest.approx(2.224, abs=2e-3))
    assert rx == pytest.approx(ex, rel=1e-3)
    assert ry == pytest.approx(ey, rel=1e-3)


@pytest.mark.parametrize("angle_deg", [0.0, 30.0, 90.0, 137.0])
def test_rotated_geotransform_gives_pixel_step(angle_deg: float) -> None:
    a = math.radians(angle_deg)
    px, py = 0.5, 0.8
    gt = (
        500000.0,
        px * math.cos(a),
        py * math.sin(a),
        4000000.0,
        px * math.sin(a),
        -py * math.cos(a),
    )
    rx, ry = ground_resolution(info_of(mem(np.zeros((1, 30, 40), np.uint8), gt)))
    assert rx == pytest.approx(px, rel=5e-3)
    assert ry == pytest.approx(py, rel=5e-3)


def test_no_crs_needs_input_resolution() -> None:
    ds = mem(np.zeros((1, 10, 10), np.uint8), (0, 1, 0, 0, 0, -1), epsg=None)
    info = info_of(ds)
    assert not info.has_crs
    with pytest.raises(MapRefinerError, match="--input-resolution"):
        ground_resolution(info)
    assert ground_resolution(info, 0.3) == (0.3, 0.3)
    # The override also wins over a CRS.
    assert ground_resolution(info_of(mem(np.zeros((1, 10, 10), np.uint8))), 2.0) == (2.0, 2.0)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_unusable_input_resolution_is_refused(bad: float) -> None:
    info = info_of(mem(np.zeros((1, 10, 10), np.uint8), epsg=None))
    with pytest.raises(MapRefinerError, match="resolution"):
        ground_resolution(info, bad)


def test_read_window_values_and_offsets() -> None:
    arr = np.arange(3 * 12 * 10, dtype=np.uint8).reshape(3, 12, 10)
    data, valid = read_window(mem(arr), [1, 2, 3], 2, 3, 5, 4)
    assert data.dtype == np.float32 and data.shape == (3, 4, 5)
    np.testing.assert_array_equal(data, arr[:, 3:7, 2:7].astype(np.float32))
    assert valid.all()


def test_nodata_in_every_band_invalidates_the_pixel() -> None:
    """A collar holds the value in every band; one band at it is real (a white roof
    saturating red where nodata is 255; session 40). As gdalwarp reads a source with one
    nodata value (UNIFIED_SRC_NODATA=PARTIAL)."""
    arr = np.full((3, 6, 6), 7, np.uint8)
    arr[0, 1, 1] = 0  # one band at the value: data
    arr[2, 4, 5] = 0
    arr[:, 3, 2] = 0  # every band: no data
    data, valid = read_window(mem(arr, nodata=0), [1, 2, 3], 0, 0, 6, 6)
    expected = np.ones((6, 6), bool)
    expected[3, 2] = False
    np.testing.assert_array_equal(valid, expected)
    assert data[0, 1, 1] == 0 and data[1, 1, 1] == 7
    # one band read three times (a grey image): its own value decides
    _, valid = read_window(mem(arr, nodata=0), [1, 1, 1], 0, 0, 6, 6)
    assert not valid[1, 1] and not valid[3, 2] and valid.sum() == 34
    # Without nodata, 0 in some bands is a value like any other.
    _, valid = read_window(mem(arr), [1, 2, 3], 0, 0, 6, 6)
    assert valid.sum() == 35  # ... and black in every band no data (session 39)


def test_nodata_is_judged_by_the_band_s_type_not_the_buffer_s() -> None:
    """The bundled model's look and the training statistics read byte bands into float
    buffers: one band at 255 is still data there (at_declared_nodata asks the band)."""
    arr = np.full((3, 4, 4), 9, np.uint8)
    arr[0, 1, 1] = 255  # a roof saturating red
    arr[:, 2, 2] = 255  # a white collar
    ds = mem(arr, nodata=255)
    bands = [ds.GetRasterBand(b) for b in (1, 2, 3)]
    floats = [band.ReadAsArray().astype(np.float64) for band in bands]
    found = at_declared_nodata(floats, bands)
    assert found is not None and found.sum() == 1 and found[2, 2]
    plain = mem(arr)  # kept: its band's owner
    assert at_declared_nodata(floats, [plain.GetRasterBand(1)] * 3) is None


@pytest.mark.parametrize("nodata", [None, float("nan"), -9999.0])
def test_nan_is_invalid_and_replaced(nodata) -> None:
    arr = np.full((3, 5, 5), 2.5, np.float32)
    arr[1, 2, 3] = np.nan
    arr[0, 0, 0] = np.inf
    arr[2, 4, 4] = -9999.0
    data, valid = read_window(mem(arr, nodata=nodata), [1, 2, 3], 0, 0, 5, 5)
    assert np.isfinite(data).all()
    assert not valid[2, 3] and not valid[0, 0]
    assert data[1, 2, 3] == 0 and data[0, 0, 0] == 0
    assert valid[4, 4] == (nodata != -9999.0)
    assert valid.sum() == 25 - 2 - (nodata == -9999.0)


def test_one_band_raster_repeated_and_four_band_selection() -> None:
    one = np.arange(20, dtype=np.uint8).reshape(1, 4, 5)
    data, _ = read_window(mem(one), [1, 1, 1], 0, 0, 5, 4)
    for i in range(3):
        np.testing.assert_array_equal(data[i], one[0])
    four = np.stack([np.full((4, 5), v, np.uint8) for v in (10, 20, 30, 40)])
    data, _ = read_window(mem(four), [4, 2, 1], 0, 0, 5, 4)
    assert [float(data[i, 0, 0]) for i in range(3)] == [40.0, 20.0, 10.0]
    info = info_of(mem(four))
    check_bands(info, [1, 2, 3, 4])
    with pytest.raises(MapRefinerError, match="has 4 band") as four_bands:
        check_bands(info, [2, 5])
    assert "grey" not in str(four_bands.value)
    with pytest.raises(MapRefinerError, match=r"has 1 band.*grey or panchromatic image 1,1,1"):
        check_bands(info_of(mem(one)), [1, 2, 3])


def test_alpha_band_masks_pixels(tmp_path: Path) -> None:
    rgba = np.full((4, 6, 6), 100, np.uint8)
    rgba[3, :2, :] = 0  # transparent top rows
    ds = write_image(tmp_path / "rgba.tif", rgba)
    ds.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds = None
    ds = open_raster(tmp_path / "rgba.tif")
    _, valid = read_window(ds, [1, 2, 3], 0, 0, 6, 6)
    assert not valid[:2].any() and valid[2:].all()


@pytest.mark.parametrize("dtype,value", [(np.uint16, 40000), (np.float32, -12.75)])
def test_uint16_and_float32_inputs(tmp_path: Path, dtype, value) -> None:
    arr = np.full((3, 8, 9), value, dtype)
    arr[1, 5, 6] = 3
    write_image(tmp_path / "x.tif", arr)
    ds = open_raster(tmp_path / "x.tif")
    info = raster_info(ds)
    assert (info.width, info.height, info.band_count) == (9, 8, 3)
    data, valid = read_window(ds, [1, 2, 3], 0, 0, 9, 8)
    assert data.dtype == np.float32
    assert data[0, 0, 0] == np.float32(value) and data[1, 5, 6] == 3
    assert valid.all()


def test_open_raster_errors(tmp_path: Path) -> None:
    with pytest.raises(MapRefinerError, match="not found"):
        open_raster(tmp_path / "missing.tif")
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"this is not a raster at all")
    with pytest.raises(MapRefinerError, match="cannot read"):
        open_raster(junk)


def test_local_engineering_crs_is_a_clear_error() -> None:
    ds = mem(np.zeros((1, 10, 10), np.uint8), (0, 1, 0, 0, 0, -1), epsg=None)
    ds.SetProjection('LOCAL_CS["arbitrary",UNIT["metre",1]]')
    info = info_of(ds)
    assert info.has_crs
    with pytest.raises(MapRefinerError, match="--input-resolution"):
        ground_resolution(info)
    assert ground_resolution(info, 0.25) == (0.25, 0.25)


def test_latitudes_beyond_the_pole_are_refused() -> None:
    ds = mem(np.zeros((1, 10, 10), np.uint8), (170.0, 1.0, 0.0, 120.0, 0.0, -1.0), 4326)
    with pytest.raises(MapRefinerError, match="georeferencing"):
        ground_resolution(info_of(ds))


@pytest.mark.realdata
@pytest.mark.parametrize(
    "parts,expected,rel",
    [
        (("xiamen", "xiamen_rgb.tif"), (0.543, 0.543), 5e-3),  # 0.597 m Mercator at 24.5 N
        (("austin", "austin_dev_rgb.tif"), (0.30, 0.30), 1e-2),  # UTM 14N, 0.30 m
        (("swellendam", "3320D_2010_315_RGB_LATLNG.tif"), (2.30, 2.78), 1e-2),  # degrees
    ],
)
def test_real_rasters_ground_resolution(parts, expected, rel) -> None:
    from helpers_data import real_data

    info = raster_info(open_raster(real_data(*parts)))
    rx, ry = ground_resolution(info)
    assert (rx, ry) == (pytest.approx(expected[0], rel=rel), pytest.approx(expected[1], rel=rel))
