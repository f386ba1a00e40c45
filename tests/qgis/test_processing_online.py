"""processing.run("map_refiner:refine") on an online layer: an XYZ layer or a KVP WMTS
layer served from 127.0.0.1 is fetched over the EXTENT parameter at the model's
resolution (beside the output, or in the Processing temp folder), reused for the same
extent, never into an output's name, cancelled by the feedback, and refined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_tiles import pixel_size, serve_tiles, web_mosaic
from helpers_wmts import serve_wmts
from osgeo import gdal
from qgis.core import (
    QgsDataSourceUri,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingUtils,
    QgsRasterLayer,
)
from test_online_layer import TX, TY, ZOOM, mosaic_rect, wms_layer, xyz_layer

gdal.UseExceptions()
pytestmark = pytest.mark.usefixtures("quiet_canvas")  # the layers they add are not drawn


@pytest.fixture
def processing_with_plugin(qgis_processing, plugin):  # noqa: ANN001, ANN201
    import processing

    return processing


@pytest.fixture
def mosaic(tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir()
    return web_mosaic(folder / "mosaic.tif", ZOOM, TX, TY, cols=4, rows=3)


class LoggingFeedback(QgsProcessingFeedback):
    """Keeps the log lines and the progress; cancels once ``cancel_when()`` is true."""

    def __init__(self, cancel_when=lambda: False) -> None:  # noqa: ANN001
        super().__init__()
        self.lines: list[str] = []
        self.percents: list[float] = []
        self.cancel_when = cancel_when
        self.progressChanged.connect(self.percents.append)

    def pushInfo(self, info: str) -> None:  # noqa: N802 - QGIS's name
        self.lines.append(info)
        super().pushInfo(info)

    def isCanceled(self) -> bool:  # noqa: N802 - QGIS's name
        return self.cancel_when() or super().isCanceled()

    @property
    def log(self) -> str:
        return "\n".join(self.lines)


def extent_text(mosaic: Path, col: int, row: int, w: int, h: int) -> str:
    """Processing's extent string (xmin,xmax,ymin,ymax [CRS]) of a pixel window."""
    r = mosaic_rect(mosaic, col, row, w, h)
    return f"{r.xMinimum()!r},{r.xMaximum()!r},{r.yMinimum()!r},{r.yMaximum()!r} [EPSG:3857]"


def refine_area(  # noqa: ANN001
    processing, inp: str, model: Path, output: str, extent: str, feedback
) -> dict:
    """map_refiner:refine of ``inp`` (a layer id or source) over ``extent`` with ``model``."""
    params = {"INPUT": inp, "EXTENT": extent, "MODEL": str(model), "OUTPUT": output}
    return processing.run("map_refiner:refine", params, feedback=feedback)


def assert_mosaic_pixels(fetched: Path, mosaic: Path, w: int, h: int) -> None:
    """``fetched`` is on the zoom-18 grid, covers a ``w`` x ``h`` window of the mosaic and
    holds its pixels there."""
    ds, src = gdal.Open(str(fetched)), gdal.Open(str(mosaic))
    gt, sgt = ds.GetGeoTransform(), src.GetGeoTransform()
    assert gt[1] == pytest.approx(pixel_size(ZOOM)) and ds.RasterCount == 3
    col, row = round((gt[0] - sgt[0]) / sgt[1]), round((gt[3] - sgt[3]) / sgt[5])
    assert (col, row) == (300, 250) and (ds.RasterXSize, ds.RasterYSize) == (w, h)
    np.testing.assert_array_equal(ds.ReadAsArray(), src.ReadAsArray(col, row, w, h))


def test_an_xyz_layer_is_fetched_over_the_extent_and_refined(
    processing_with_plugin, qgis_new_project, tiny_model, mosaic, tmp_path
) -> None:  # noqa: ANN001
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "refined.tif"
    with serve_tiles(mosaic, ZOOM) as server:
        layer = xyz_layer(server.url)
        assert layer.isValid(), layer.error().summary()
        qgis_new_project.addMapLayer(layer)
        params = {
            "INPUT": layer.id(),
            "EXTENT": extent_text(mosaic, 300, 250, 400, 300),
            "MODEL": str(tiny_model),
            "DEVICE": 1,
            "OUTPUT": str(out),
        }
        feedback = LoggingFeedback()
        result = processing_with_plugin.run("map_refiner:refine", params, feedback=feedback)
        served, served_bytes = len(server.served), server.bytes_served
        again = LoggingFeedback()
        second = processing_with_plugin.run("map_refiner:refine", params, feedback=again)
        assert len(server.served) == served  # the same extent: the GeoTIFF is reused
    fetched = Path(result["FETCHED"])
    assert fetched.parent == out_dir and fetched.name.startswith("Local_XYZ_")
    assert result["OUTPUT"] == str(out) and second["FETCHED"] == str(fetched)
    assert sorted(p.name for p in out_dir.glob("*.tif")) == sorted([fetched.name, "refined.tif"])
    assert served == 2 * 3  # pixels 300..699 x 250..549: tile columns 1-2, rows 0-2
    assert f"Fetched {served} tiles ({served_bytes / 1e3:.0f} kB, zoom 18, " in feedback.log
    assert f"from Local XYZ → {fetched}" in feedback.log
    assert f"Reused {fetched} (fetched from Local XYZ before)" in again.log
    assert_mosaic_pixels(fetched, mosaic, 400, 300)
    refined = gdal.Open(str(out))
    assert refined.GetGeoTransform() == pytest.approx(gdal.Open(str(fetched)).GetGeoTransform())
    assert "tiny test model" in gdal.Info(str(out))
    assert any(0 < p < 30 for p in feedback.percents)  # the fetch moves the bar, to 30 %
    assert feedback.percents[-1] == pytest.approx(100.0)
    assert feedback.percents == sorted(feedback.percents)  # the fetch, then the refine


def test_without_an_extent_it_says_what_to_set(
    processing_with_plugin, qgis_new_project, tiny_model, mosaic, tmp_path
) -> None:  # noqa: ANN001
    with serve_tiles(mosaic, ZOOM) as server:
        layer = xyz_layer(server.url)
        qgis_new_project.addMapLayer(layer)
        server.served.clear()  # QGIS may have asked for tiles on its own
        with pytest.raises(
            QgsProcessingException,
            match="“Local XYZ” is an online layer .*: set “Area to fetch .*” .* the area to refine",
        ):
            processing_with_plugin.run(
                "map_refiner:refine",
                {"INPUT": layer.id(), "MODEL": str(tiny_model), "OUTPUT": str(tmp_path / "r.tif")},
                feedback=LoggingFeedback(),
            )
        assert server.served == []
    assert not (tmp_path / "r.tif").exists()


def test_a_file_input_ignores_the_extent(
    processing_with_plugin, tiny_model, rgb_path, tmp_path
) -> None:  # noqa: ANN001
    feedback = LoggingFeedback()
    result = refine_area(
        processing_with_plugin,
        str(rgb_path),
        tiny_model,
        str(tmp_path / "r.tif"),
        "0,1,0,1 [EPSG:3857]",
        feedback,
    )
    assert "FETCHED" not in result or result["FETCHED"] is None
    assert "“Area to fetch” is ignored" in feedback.log
    assert gdal.Open(str(tmp_path / "r.tif")).RasterXSize == 48


def test_the_fetch_never_takes_the_outputs_name(
    processing_with_plugin, qgis_new_project, tiny_model, mosaic, tmp_path
) -> None:  # noqa: ANN001
    """The output named as the cached fetch: the fetch goes to ``_2`` (the refine reads it)
    and the output is the class map, not the image it was asked to refine."""
    with serve_tiles(mosaic, ZOOM) as server:
        layer = xyz_layer(server.url)
        qgis_new_project.addMapLayer(layer)
        params = {
            "INPUT": layer.id(),
            "EXTENT": extent_text(mosaic, 300, 250, 400, 300),
            "MODEL": str(tiny_model),
            "OUTPUT": str(tmp_path / "first.tif"),
        }
        first = Path(processing_with_plugin.run("map_refiner:refine", params)["FETCHED"])
        params["OUTPUT"] = str(first)
        second = processing_with_plugin.run("map_refiner:refine", params)
    fetched = Path(second["FETCHED"])
    assert fetched == first.with_name(f"{first.stem}_2.tif")
    assert_mosaic_pixels(fetched, mosaic, 400, 300)
    assert gdal.Open(str(first)).RasterCount == 1  # now the class map asked for


def test_cancel_in_mid_fetch_writes_nothing(
    processing_with_plugin, qgis_new_project, tiny_model, mosaic, tmp_path
) -> None:  # noqa: ANN001
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with serve_tiles(mosaic, ZOOM, delay_s=0.3) as server:
        layer = xyz_layer(server.url)
        qgis_new_project.addMapLayer(layer)
        server.served.clear()
        feedback = LoggingFeedback(cancel_when=lambda: len(server.served) >= 1)
        with pytest.raises(QgsProcessingException, match="Cancelled"):
            processing_with_plugin.run(
                "map_refiner:refine",
                {
                    "INPUT": layer.id(),
                    "EXTENT": extent_text(mosaic, 0, 0, 1024, 768),
                    "MODEL": str(tiny_model),
                    "OUTPUT": str(out_dir / "r.tif"),
                },
                feedback=feedback,
            )
        assert len(server.served) < 12  # stopped before the last tile
    assert list(out_dir.iterdir()) == []


def test_a_kvp_wmts_layer_into_a_temporary_output(
    processing_with_plugin, qgis_new_project, tiny_model, mosaic, tmp_path
) -> None:  # noqa: ANN001
    """A WMTS layer QGIS made from a KVP endpoint (GetTile by query parameters only): the
    tile matrix as fine as the model over the extent, cached in the Processing temp folder
    for a temporary output."""
    with serve_wmts(mosaic, ZOOM, tmp_path / "wmts") as wmts:
        uri = QgsDataSourceUri()  # as QGIS's WMTS connection records a KVP service
        for key, value in (
            ("crs", "EPSG:3857"),
            ("format", "image/png"),
            ("layers", "mosaic"),
            ("styles", "default"),
            ("tileMatrixSet", "g"),
            ("url", f"{wmts.kvp_url}?SERVICE=WMTS&REQUEST=GetCapabilities"),
        ):
            uri.setParam(key, value)
        layer = QgsRasterLayer(bytes(uri.encodedUri()).decode(), "KVP WMTS", "wms")
        assert layer.isValid(), layer.error().summary()
        qgis_new_project.addMapLayer(layer)
        wmts.kvp_tiles.clear()
        feedback = LoggingFeedback()
        result = refine_area(
            processing_with_plugin,
            layer.id(),
            tiny_model,
            "TEMPORARY_OUTPUT",
            extent_text(mosaic, 300, 250, 400, 300),
            feedback,
        )
        asked = [(q["TILEMATRIX"], q["TILECOL"], q["TILEROW"]) for q in wmts.kvp_tiles]
    fetched = Path(result["FETCHED"])
    assert fetched.parent == Path(QgsProcessingUtils.tempFolder())
    assert fetched.name.startswith("KVP_WMTS_")
    assert "Fetched 6 tiles (" in feedback.log and "zoom 18" in feedback.log
    assert len(asked) == 6 and {z for z, _, _ in asked} == {"18"}
    assert_mosaic_pixels(fetched, mosaic, 400, 300)
    out = gdal.Open(result["OUTPUT"])
    assert out.GetGeoTransform() == pytest.approx(gdal.Open(str(fetched)).GetGeoTransform())


def test_an_extent_in_another_crs_is_carried_to_the_tiles(
    processing_with_plugin, qgis_new_project, tiny_model, mosaic, tmp_path
) -> None:  # noqa: ANN001
    """The extent in degrees (EPSG:4326, as a canvas in that CRS gives it): the tiles'
    pixels over at least the same window, on the zoom-18 grid."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject

    to_degrees = QgsCoordinateTransform(
        QgsCoordinateReferenceSystem("EPSG:3857"),
        QgsCoordinateReferenceSystem("EPSG:4326"),
        QgsProject.instance(),
    )
    r = to_degrees.transformBoundingBox(mosaic_rect(mosaic, 300, 250, 400, 300))
    with serve_tiles(mosaic, ZOOM) as server:
        layer = xyz_layer(server.url)
        qgis_new_project.addMapLayer(layer)
        result = processing_with_plugin.run(
            "map_refiner:refine",
            {
                "INPUT": layer.id(),
                "EXTENT": f"{r.xMinimum()},{r.xMaximum()},{r.yMinimum()},{r.yMaximum()} "
                "[EPSG:4326]",
                "MODEL": str(tiny_model),
                "OUTPUT": str(tmp_path / "r.tif"),
            },
        )
    ds, src = gdal.Open(result["FETCHED"]), gdal.Open(str(mosaic))
    gt, sgt = ds.GetGeoTransform(), src.GetGeoTransform()
    col, row = round((gt[0] - sgt[0]) / sgt[1]), round((gt[3] - sgt[3]) / sgt[5])
    assert gt[1] == pytest.approx(pixel_size(ZOOM))
    assert ds.GetSpatialRef().GetAuthorityCode(None) == "3857"
    assert 298 <= col <= 300 and 248 <= row <= 250  # the box, give or take float rounding
    assert 400 <= ds.RasterXSize <= 403 and 300 <= ds.RasterYSize <= 303
    np.testing.assert_array_equal(
        ds.ReadAsArray(), src.ReadAsArray(col, row, ds.RasterXSize, ds.RasterYSize)
    )


def test_a_layer_given_by_its_source_string_as_qgis_process_does(
    processing_with_plugin, qgis_new_project, tiny_model, mosaic, tmp_path
) -> None:  # noqa: ANN001
    """``wms://<source>`` (no project layer; qgis_process passes layers so): a layer
    without a name, so the fetch and the log are named after the service's host."""
    with serve_tiles(mosaic, ZOOM) as server:
        feedback = LoggingFeedback()
        result = refine_area(
            processing_with_plugin,
            "wms://" + xyz_layer(server.url).source(),
            tiny_model,
            str(tmp_path / "r.tif"),
            extent_text(mosaic, 300, 250, 400, 300),
            feedback,
        )
    fetched = Path(result["FETCHED"])
    assert fetched.parent == tmp_path and fetched.name.startswith("127.0.0.1_")
    assert "Fetched 6 tiles (" in feedback.log and f"from 127.0.0.1 → {fetched}" in feedback.log
    assert_mosaic_pixels(fetched, mosaic, 400, 300)


def test_a_wms_layer_is_fetched_on_a_grid_of_the_models_resolution(
    processing_with_plugin, qgis_new_project, tiny_model, mosaic, tmp_path
) -> None:  # noqa: ANN001
    with serve_tiles(mosaic, ZOOM) as server:
        layer = wms_layer(server.wms_url)
        assert layer.isValid(), layer.error().summary()
        qgis_new_project.addMapLayer(layer)
        server.served.clear()
        feedback = LoggingFeedback()
        result = refine_area(
            processing_with_plugin,
            layer.id(),
            tiny_model,
            str(tmp_path / "r.tif"),
            extent_text(mosaic, 300, 250, 400, 300),
            feedback,
        )
        served = len(server.served)
    fetched = gdal.Open(result["FETCHED"])
    assert f"Fetched {served} tiles (" in feedback.log and "from Local WMS" in feedback.log
    assert fetched.GetGeoTransform()[1] == pytest.approx(0.6 / 0.9207, rel=1e-3)  # 0.6 m
    assert (fetched.ReadAsArray() > 0).mean() > 0.9  # the mosaic's pixels, not blank
    out = gdal.Open(result["OUTPUT"])
    assert out.GetGeoTransform() == pytest.approx(fetched.GetGeoTransform())
