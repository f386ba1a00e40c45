"""Property-based tests: any raster shape, data type, band count and nodata layout goes
through the I/O and tiling path with nodata exactly where the input has none, valid
classes elsewhere, and the same map whatever the tile size."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers_engine import UTM33N, random_model, wkt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osgeo import gdal, gdal_array

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.rasters.read import open_raster, read_window
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

gdal.UseExceptions()
DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]
LAYOUTS = ["none", "rectangle", "speckle", "rows", "all", "one-band-only"]
NODATA = {
    np.dtype(np.uint8): 0,
    np.dtype(np.uint16): 65535,
    np.dtype(np.int16): -32768,
    np.dtype(np.int32): -2147483648,
    np.dtype(np.float32): -9999.0,
    np.dtype(np.float64): -3.4e38,
}


@dataclass
class Case:
    """A raster to write, the bands a model reads, and which pixels are invalid."""

    data: np.ndarray  # (bands, h, w), the file's type
    nodata: float | None
    alpha: np.ndarray | None  # (h, w) uint8, written as an extra alpha band
    bands: list[int]  # 1-based, what the model reads (repeats allowed)
    invalid: np.ndarray  # (h, w) bool: the expected nodata pixels

    def write(self, path: Path) -> Path:
        n, h, w = self.data.shape
        extra = 1 if self.alpha is not None else 0
        gtype = gdal_array.NumericTypeCodeToGDALTypeCode(self.data.dtype)
        ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, n + extra, gtype)
        ds.SetGeoTransform((600000.0, 0.4, 0.0, 5000000.0, 0.0, -0.4))
        ds.SetProjection(wkt(UTM33N))
        for i in range(n):
            band = ds.GetRasterBand(i + 1)
            if i >= 3:  # not GTiff's implicit alpha of a fourth byte band: data
                band.SetColorInterpretation(gdal.GCI_Undefined)
            if self.nodata is not None:
                band.SetNoDataValue(self.nodata)
            band.WriteArray(self.data[i])
        if self.alpha is not None:
            band = ds.GetRasterBand(n + 1)
            band.SetColorInterpretation(gdal.GCI_AlphaBand)
            band.WriteArray(self.alpha.astype(self.data.dtype))
        ds = None
        return path


@st.composite
def cases(draw, max_side: int = 48) -> Case:
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    n = draw(st.sampled_from([1, 2, 3, 4, 8]))
    bands = draw(st.lists(st.integers(1, n), min_size=3, max_size=3))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    data = rng.integers(1, 250, (n, h, w)).astype(dtype)
    layout = draw(st.sampled_from(LAYOUTS))
    use_nan = dtype.kind == "f" and draw(st.booleans())
    hole = np.zeros((h, w), bool)
    if layout == "rectangle":
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        hole[y0 : y0 + draw(st.integers(1, h)), x0 : x0 + draw(st.integers(1, w))] = True
    elif layout == "speckle":
        hole = rng.random((h, w)) < 0.2
    elif layout == "rows":
        hole[::3] = True
    elif layout in ("all", "one-band-only"):
        hole[:] = layout == "all" or rng.random((h, w)) < 0.5
    marked = bands[0] - 1 if layout == "one-band-only" else None
    nodata = None if layout == "none" or use_nan else float(NODATA[dtype])
    for b in range(n):
        if marked is None or b == marked:
            data[b][hole] = np.nan if use_nan else (nodata if nodata is not None else 0)
    invalid = hole if layout != "none" else np.zeros((h, w), bool)
    if marked is not None and dtype.kind != "f" and any(b - 1 != marked for b in bands):
        # one integer band at the nodata value is data (session 40); a float band's is not
        invalid = np.zeros((h, w), bool)
    alpha = None
    if draw(st.booleans()):
        alpha = np.full((h, w), 255, np.uint8)
        alpha[rng.random((h, w)) < 0.1] = 0
        invalid = invalid | (alpha == 0)
    return Case(data, nodata, alpha, bands, invalid)


@settings(max_examples=200, deadline=None)
@given(
    case=cases(max_side=40),
    window=st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)),
)
def test_read_window_marks_exactly_the_nodata_pixels(case: Case, window) -> None:
    with tempfile.TemporaryDirectory() as d:
        ds = open_raster(case.write(Path(d) / "r.tif"))
        _, h, w = case.data.shape
        x0, y0 = int(window[0] * (w - 1)), int(window[1] * (h - 1))
        ww, hh = 1 + int(window[2] * (w - x0 - 1)), 1 + int(window[3] * (h - y0 - 1))
        data, valid = read_window(ds, case.bands, x0, y0, ww, hh)
        ds = None
    assert data.dtype == np.float32 and np.isfinite(data).all()
    np.testing.assert_array_equal(~valid, case.invalid[y0 : y0 + hh, x0 : x0 + ww])
    expect = case.data[[b - 1 for b in case.bands], y0 : y0 + hh, x0 : x0 + ww].astype(np.float32)
    np.testing.assert_array_equal(data[:, valid], expect[:, valid])


@pytest.fixture(scope="module")
def model():
    return random_model(
        ("background", "building", "road"), resolution_m=0.6, seed=121, iterations=2
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    case=cases(max_side=48),
    res=st.sampled_from([0.2, 0.4, 0.6, 1.5]),
    tile=st.sampled_from([16, 24, 40]),
)
def test_refine_any_raster_tiled_equals_one_piece(model, case: Case, res: float, tile: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        image = case.write(d / "in.tif")
        maps = {}
        for size in (tile, 1 << 20):
            out = d / f"c{size}.tif"
            refine_raster(
                RefineParams(
                    image=image,
                    out=out,
                    scores=d / f"s{size}.tif",
                    bands=case.bands,
                    input_resolution_m=res,
                    device="cpu",
                    tile_size=size,
                ),
                model=model,
            )
            maps[size] = (
                gdal.Open(str(out)).ReadAsArray(),
                gdal.Open(str(d / f"s{size}.tif")).ReadAsArray(),
            )
    (cls, probs), (cls1, probs1) = maps[tile], maps[1 << 20]
    _, h, w = case.data.shape
    probs, probs1 = probs.reshape(3, h, w), probs1.reshape(3, h, w)
    np.testing.assert_array_equal(cls == 255, case.invalid)
    assert set(np.unique(cls[~case.invalid])) <= {0, 1, 2}
    assert (probs[:, case.invalid] == -1).all()
    np.testing.assert_allclose(probs[:, ~case.invalid].sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, probs1, atol=2e-5)
    top = np.sort(probs1, axis=0)
    tie = top[-1] - top[-2] < 1e-4
    assert ((cls == cls1) | tie).all()


@settings(max_examples=40, deadline=None)
@given(n=st.sampled_from([1, 2, 4]), chosen=st.lists(st.integers(-1, 9), min_size=1, max_size=4))
def test_band_choices_beyond_the_raster_are_refused(n: int, chosen: list[int]) -> None:
    from map_refiner.engine.rasters.read import check_bands, raster_info

    ds = gdal.GetDriverByName("MEM").Create("", 4, 4, n, gdal.GDT_Byte)
    info = raster_info(ds)
    if all(1 <= b <= n for b in chosen):
        check_bands(info, chosen)
    else:
        with pytest.raises(MapRefinerError, match=rf"has {n} band\(s\).*--bands"):
            check_bands(info, chosen)
