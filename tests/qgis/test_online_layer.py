"""Online imagery as input: an XYZ layer served from 127.0.0.1 is fetched over the map
view at the model's resolution, cached beside the project, added and refined."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_tiles import pixel_size, serve_tiles, web_mosaic
from helpers_wmts import serve_wmts
from osgeo import gdal
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsDataSourceUri,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)

from map_refiner.engine.errors import MapRefinerError
from map_refiner.engine.rasters.fetch import fetch_xyz
from map_refiner.engine.rasters.wmts import WmtsSource
from map_refiner.ui.jobs.fetch_job import build_fetch_job, online_source
from map_refiner.ui.settings import DialogDefaults, save_defaults

ZOOM, TX, TY = 18, 215000, 114000
MERCATOR = QgsCoordinateReferenceSystem("EPSG:3857")


def wms_layer(url: str) -> QgsRasterLayer:
    """As QGIS's browser makes a WMS connection's layer of the local server's mosaic."""
    uri = f"crs=EPSG:3857&format=image/png&layers=mosaic&styles=&url={url}"
    return QgsRasterLayer(uri, "Local WMS", "wms")


def xyz_layer(
    url: str, name: str = "Local XYZ", referer: str = "", pixel_ratio: str = ""
) -> QgsRasterLayer:
    """As QGIS's browser makes an XYZ connection's layer (``pixel_ratio``: its Tile
    resolution, 1 standard, 2 high)."""
    uri = QgsDataSourceUri()
    if referer:
        uri.setParam("referer", referer)
    if pixel_ratio:
        uri.setParam("tilePixelRatio", pixel_ratio)
    uri.setParam("type", "xyz")
    uri.setParam("url", url)
    uri.setParam("zmin", "0")
    uri.setParam("zmax", "19")
    return QgsRasterLayer(bytes(uri.encodedUri()).decode(), name, "wms")


@pytest.fixture
def mosaic(tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir()
    return web_mosaic(folder / "mosaic.tif", ZOOM, TX, TY, cols=4, rows=3)


@pytest.fixture
def setup(plugin, tiny_model, qgis_new_project, quiet_canvas, tmp_path):  # noqa: ANN001, ANN201
    """A saved project in tmp_path/project, the dialog on the tiny model, a 3857 map that
    does not draw (quiet_canvas: what these tests check is the plugin's own fetch)."""
    folder = tmp_path / "project"
    folder.mkdir()
    qgis_new_project.setFileName(str(folder / "project.qgz"))
    save_defaults(DialogDefaults(model_path=str(tiny_model), device="cpu"))
    quiet_canvas.setDestinationCrs(MERCATOR)
    return plugin.controller, plugin.controller.ensure_dialog(), quiet_canvas, folder


def refine_and_wait(controller, job, wait_until, wait_for_tasks) -> str:  # noqa: ANN001
    """Start the refine of a job that fetches its image, wait for the refined layer and
    the tasks; the layer's name."""
    controller.start_refine(job)
    name = f"{job.fetch.request.out.stem} — refined by tiny test model (2 it.)"
    wait_until(lambda: QgsProject.instance().mapLayersByName(name), 120)
    wait_for_tasks()
    return name


def mosaic_rect(mosaic: Path, col: int, row: int, w: int, h: int) -> QgsRectangle:
    gt = gdal.Open(str(mosaic)).GetGeoTransform()
    return QgsRectangle(
        gt[0] + col * gt[1],
        gt[3] + (row + h) * gt[5],
        gt[0] + (col + w) * gt[1],
        gt[3] + row * gt[5],
    )


def test_an_xyz_layer_is_fetched_over_the_view_and_refined(
    setup, mosaic, qgis_iface, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    controller, dialog, canvas, folder = setup
    with serve_tiles(mosaic, ZOOM) as server:
        layer = xyz_layer(server.url)
        assert layer.isValid(), layer.error().summary()
        QgsProject.instance().addMapLayer(layer)
        dialog.input_combo.setLayer(layer)
        assert Path(dialog.output_widget.filePath()) == folder / "Local_XYZ_refined.tif"
        canvas.setExtent(mosaic_rect(mosaic, 300, 250, 400, 300))
        view = canvas.extent()
        job = dialog.refine_job()
        fetched = job.fetch.request.out
        assert fetched.parent == folder and fetched.name.startswith("Local_XYZ_")
        refined_name = refine_and_wait(controller, job, wait_until, wait_for_tasks)
        served = len(server.served)

    bar = qgis_iface.messageBar()
    assert bar.get_messages(Qgis.MessageLevel.Critical) == []
    said = " ".join(bar.get_messages(Qgis.MessageLevel.Success))
    assert f"Fetched {served} tiles (" in said and "kB, zoom 18" in said and str(fetched) in said
    # the fetched image: the view on the zoom-18 grid, with the served pixels
    ds = gdal.Open(str(fetched))
    gt = ds.GetGeoTransform()
    assert gt[1] == pytest.approx(pixel_size(ZOOM))
    assert gt[0] <= view.xMinimum() + 1e-6 and gt[3] >= view.yMaximum() - 1e-6
    assert gt[0] + ds.RasterXSize * gt[1] >= view.xMaximum() - 1e-6
    src = gdal.Open(str(mosaic))  # where the view is inside the mosaic, its pixels
    sgt = src.GetGeoTransform()
    col, row = round((gt[0] - sgt[0]) / sgt[1]), round((gt[3] - sgt[3]) / sgt[5])
    c0, r0 = max(col, 0), max(row, 0)
    c1 = min(col + ds.RasterXSize, src.RasterXSize)
    r1 = min(row + ds.RasterYSize, src.RasterYSize)
    assert c1 - c0 >= 300 and r1 - r0 >= 250
    np.testing.assert_array_equal(
        ds.ReadAsArray(c0 - col, r0 - row, c1 - c0, r1 - r0),
        src.ReadAsArray(c0, r0, c1 - c0, r1 - r0),
    )
    # added as a layer, now the dialog's input; the refined map on its grid
    (image,) = QgsProject.instance().mapLayersByName(fetched.stem)
    assert dialog.input_combo.currentLayer() is image
    (refined,) = QgsProject.instance().mapLayersByName(refined_name)
    out = Path(refined.source())
    assert out == folder / "Local_XYZ_refined.tif"
    assert gdal.Open(str(out)).GetGeoTransform() == pytest.approx(gt)
    assert controller.refined[fetched].path == out  # Export uses it
    assert controller.tasks == []


def test_the_same_view_is_fetched_once(
    setup, mosaic, qgis_iface, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    controller, dialog, canvas, folder = setup
    with serve_tiles(mosaic, ZOOM) as server:
        layer = xyz_layer(server.url)
        QgsProject.instance().addMapLayer(layer)
        canvas.setExtent(mosaic_rect(mosaic, 100, 100, 200, 200))
        first = build_fetch_job(layer, controller.map_view(), 0.6, QgsProject.instance())
        fetch_xyz(first.request)
        served = len(server.served)
        dialog.input_combo.setLayer(layer)
        job = dialog.refine_job()
        assert job.fetch.request.out == first.request.out  # the cached file, same name
        controller.start_refine(job)
        wait_until(
            lambda: any(
                "Reused" in m
                for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success)
            ),
            60,
        )
        wait_for_tasks()
        assert len(server.served) == served
    fetched = [p for p in folder.glob("Local_XYZ_*.tif") if "refined" not in p.name]
    assert fetched == [first.request.out]  # fetched once, refined from the cache


def test_a_view_too_large_is_refused_before_fetching(setup, mosaic) -> None:  # noqa: ANN001
    controller, dialog, canvas, _folder = setup
    layer = xyz_layer("http://127.0.0.1:9/{z}/{x}/{y}.png")
    QgsProject.instance().addMapLayer(layer)
    dialog.input_combo.setLayer(layer)
    canvas.setExtent(QgsRectangle(13100000, 2780000, 13200000, 2850000))  # 100 km wide
    with pytest.raises(MapRefinerError, match="tiles at zoom 18.*Zoom in"):
        dialog.refine_job()


def test_the_layers_referer_goes_with_the_requests(qgis_new_project) -> None:  # noqa: ANN001
    layer = xyz_layer("http://127.0.0.1:9/{z}/{x}/{y}.png", referer="https://example.org/")
    assert online_source(layer).referer == "https://example.org/"
    assert online_source(layer).url == "http://127.0.0.1:9/{z}/{x}/{y}.png"


def test_the_layers_tile_resolution_sets_the_tile_size(qgis_new_project) -> None:  # noqa: ANN001
    plain, retina = "http://127.0.0.1:9/{z}/{x}/{y}.png", "http://127.0.0.1:9/{z}/{x}/{y}@2x.png"
    assert online_source(xyz_layer(plain)).tile_size == 256
    assert online_source(xyz_layer(plain, pixel_ratio="2")).tile_size == 512  # High (512x512)
    assert online_source(xyz_layer(retina, pixel_ratio="0")).tile_size == 512  # Unknown, @2x
    assert online_source(xyz_layer(retina, pixel_ratio="1")).tile_size == 256  # Standard


def test_512_px_and_quadkey_layers_are_fetched_over_the_view(setup, tmp_path) -> None:  # noqa: ANN001
    """A High-resolution XYZ layer (512 px tiles) and a Bing-style {q} layer, as QGIS holds
    them: the view's fetch gets the served pixels on the served zoom's grid."""
    controller, _dialog, canvas, folder = setup
    mosaic = web_mosaic(tmp_path / "m512.tif", ZOOM - 1, TX // 2, TY // 2, 2, 2, tile=512)
    with serve_tiles(mosaic, ZOOM - 1, tile=512) as server:
        hi = xyz_layer(server.url, "High DPI", pixel_ratio="2")
        quad = xyz_layer(server.quadkey_url, "Quadkeys", pixel_ratio="2")
        QgsProject.instance().addMapLayers([hi, quad])
        assert hi.isValid() and quad.isValid()
        canvas.setExtent(mosaic_rect(mosaic, 300, 250, 400, 300))
        for layer in (hi, quad):
            job = build_fetch_job(layer, controller.map_view(), 0.6, QgsProject.instance())
            served = len(server.served)
            result = fetch_xyz(job.request)
            assert result.zoom == ZOOM - 1 and result.tiles == len(server.served) - served
            ds, src = gdal.Open(str(result.path)), gdal.Open(str(mosaic))
            gt, sgt = ds.GetGeoTransform(), src.GetGeoTransform()
            assert gt[1] == pytest.approx(pixel_size(ZOOM)) and result.path.parent == folder
            col, row = round((gt[0] - sgt[0]) / sgt[1]), round((gt[3] - sgt[3]) / sgt[5])
            c0, r0 = max(col, 0), max(row, 0)  # the view, where it is inside the mosaic
            c1 = min(col + ds.RasterXSize, src.RasterXSize)
            r1 = min(row + ds.RasterYSize, src.RasterYSize)
            assert c1 - c0 >= 400 and r1 - r0 >= 300
            np.testing.assert_array_equal(
                ds.ReadAsArray(c0 - col, r0 - row, c1 - c0, r1 - r0),
                src.ReadAsArray(c0, r0, c1 - c0, r1 - r0),
            )


def test_a_wmts_layers_source_is_read_as_qgis_records_it(qgis_new_project) -> None:  # noqa: ANN001
    layer = QgsRasterLayer(
        "crs=EPSG:3857&format=image/jpeg&layers=ortho&styles=default&tileMatrixSet=g"
        "&url=http://127.0.0.1:9/wmts/1.0.0/WMTSCapabilities.xml",
        "Ortho WMTS",
        "wms",
    )
    assert online_source(layer) == WmtsSource(
        "http://127.0.0.1:9/wmts/1.0.0/WMTSCapabilities.xml", "ortho", "g", "default", "image/jpeg"
    )


def test_a_wmts_layer_is_fetched_over_the_view_and_refined(
    setup, mosaic, qgis_iface, wait_until, wait_for_tasks, tmp_path
) -> None:  # noqa: ANN001
    """A WMTS layer QGIS made from the local service's capabilities: the task reads them,
    fetches the tile matrix as fine as the model over the view, and refines it."""
    controller, dialog, canvas, folder = setup
    with serve_wmts(mosaic, ZOOM, tmp_path / "wmts") as wmts:
        layer = QgsRasterLayer(
            "crs=EPSG:3857&format=image/png&layers=mosaic&styles=default&tileMatrixSet=g"
            f"&url={wmts.capabilities_url}",
            "Local WMTS",
            "wms",
        )
        assert layer.isValid(), layer.error().summary()
        QgsProject.instance().addMapLayer(layer)
        dialog.input_combo.setLayer(layer)
        assert dialog.area.isVisibleTo(dialog)
        canvas.setExtent(mosaic_rect(mosaic, 300, 250, 400, 300))
        job = dialog.refine_job()
        fetched = job.fetch.request.out
        assert fetched.parent == folder and fetched.name.startswith("Local_WMTS_")
        refined_name = refine_and_wait(controller, job, wait_until, wait_for_tasks)
        served = len(wmts.tiles_requested)
    bar = qgis_iface.messageBar()
    assert bar.get_messages(Qgis.MessageLevel.Critical) == []
    said = " ".join(bar.get_messages(Qgis.MessageLevel.Success))
    fetched_tiles = int(said.split("Fetched ")[1].split(" tiles")[0])
    assert 6 <= fetched_tiles <= served  # QGIS asks for tiles too, to draw the layer
    assert "zoom 18" in said and "from Local WMTS" in said
    ds, src = gdal.Open(str(fetched)), gdal.Open(str(mosaic))
    gt, sgt = ds.GetGeoTransform(), src.GetGeoTransform()
    assert gt[1] == pytest.approx(pixel_size(ZOOM)) and ds.RasterCount == 3
    col, row = round((gt[0] - sgt[0]) / sgt[1]), round((gt[3] - sgt[3]) / sgt[5])
    c0, r0 = max(col, 0), max(row, 0)
    c1 = min(col + ds.RasterXSize, src.RasterXSize)
    r1 = min(row + ds.RasterYSize, src.RasterYSize)
    assert c1 - c0 >= 400 and r1 - r0 >= 300
    np.testing.assert_array_equal(
        ds.ReadAsArray(c0 - col, r0 - row, c1 - c0, r1 - r0),
        src.ReadAsArray(c0, r0, c1 - c0, r1 - r0),
    )
    (refined,) = QgsProject.instance().mapLayersByName(refined_name)
    assert gdal.Open(refined.source()).GetGeoTransform() == pytest.approx(gt)


def test_xiamen_tiles_through_the_dialog_with_the_bundled_model(
    plugin, qgis_new_project, qgis_iface, tmp_path, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    """Tiles cut from the Xiamen web-map mosaic (read only) on 127.0.0.1: the view is fetched
    at zoom 18 and the bundled model's map of it is its map of the same pixels on disk."""
    from helpers_data import real_data

    from map_refiner.engine.refine.pipeline import RefineParams, refine_raster

    xiamen = real_data("xiamen", "xiamen_rgb.tif")
    qgis_new_project.setFileName(str(tmp_path / "project.qgz"))
    save_defaults(DialogDefaults(model_path="", device="cpu"))
    dialog = plugin.controller.ensure_dialog()
    canvas = qgis_iface.mapCanvas()
    canvas.setDestinationCrs(MERCATOR)
    with serve_tiles(xiamen, 18) as server:
        layer = xyz_layer(server.url, "Xiamen imagery")
        QgsProject.instance().addMapLayer(layer)
        dialog.input_combo.setLayer(layer)
        canvas.setExtent(mosaic_rect(xiamen, 3000, 3500, 600, 400))
        job = dialog.refine_job()
        plugin.controller.start_refine(job)
        start = f"{job.fetch.request.out.stem} — refined"  # by the bundled model the
        # view chooses (the general since session 47: 0.54 m pixels are satellite-like)

        def refined_layers() -> list:
            layers = QgsProject.instance().mapLayers().values()
            return [lyr for lyr in layers if lyr.name().startswith(start)]

        wait_until(refined_layers, 180)
        wait_for_tasks()
    fetched = job.fetch.request.out
    ds = gdal.Open(str(fetched))
    src = gdal.OpenEx(str(xiamen), gdal.OF_RASTER | gdal.OF_READONLY)
    gt, sgt = ds.GetGeoTransform(), src.GetGeoTransform()
    col, row = round((gt[0] - sgt[0]) / sgt[1]), round((gt[3] - sgt[3]) / sgt[5])
    assert gt[1] == pytest.approx(sgt[1]) and 0 <= col and 0 <= row
    window = tmp_path / "window.tif"  # the same pixels, cut from the file
    gdal.Translate(str(window), src, srcWin=[col, row, ds.RasterXSize, ds.RasterYSize])
    direct = refine_raster(  # the bundled model chosen for the same pixels, as the dialog's
        RefineParams(image=window, out=tmp_path / "direct.tif", device="cpu", choose_model=True)
    )
    (refined,) = refined_layers()
    ours = gdal.Open(refined.source()).ReadAsArray()
    np.testing.assert_array_equal(ours, gdal.Open(str(direct.out)).ReadAsArray())
    assert 0.02 < (ours == 1).mean() < 0.8  # buildings found, not everything
    said = " ".join(qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success))
    assert f"Fetched {len(server.served)} tiles (" in said and "from Xiamen imagery" in said


def test_cancel_in_mid_fetch_leaves_no_file_and_no_layer(
    setup, mosaic, qgis_iface, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    controller, dialog, canvas, folder = setup
    with serve_tiles(mosaic, ZOOM, delay_s=0.3) as server:
        layer = xyz_layer(server.url)
        QgsProject.instance().addMapLayer(layer)
        dialog.input_combo.setLayer(layer)
        canvas.setExtent(mosaic_rect(mosaic, 0, 0, 1024, 768))
        controller.start_refine(dialog.refine_job())
        wait_until(lambda: len(server.served) >= 1, 30)
        dialog.cancel_button.click()
        wait_for_tasks()
        assert len(server.served) < 12  # stopped before the last tile
    said = qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Info)
    assert any("Cancelled" in m for m in said), said
    assert list(folder.iterdir()) == [] or [p.name for p in folder.iterdir()] == ["project.qgz"]
    assert [n for n in QgsProject.instance().mapLayers().values() if n.name() != "Local XYZ"] == []
    assert controller.tasks == []


def test_an_extent_chosen_or_drawn_replaces_the_map_view(setup, mosaic) -> None:  # noqa: ANN001
    controller, dialog, canvas, _folder = setup
    image = QgsRasterLayer(str(mosaic), "mosaic")
    layer = xyz_layer("http://127.0.0.1:9/{z}/{x}/{y}.png")
    QgsProject.instance().addMapLayers([image, layer])
    dialog.input_combo.setLayer(image)
    assert not dialog.area.isVisibleTo(dialog)  # only for XYZ layers
    dialog.input_combo.setLayer(layer)
    assert dialog.area.isVisibleTo(dialog)
    canvas.setExtent(mosaic_rect(mosaic, 0, 0, 1024, 768))
    assert dialog.area.title() == "Area to fetch (current: map view)"
    assert dialog.area.outputExtent().xMinimum() == pytest.approx(canvas.extent().xMinimum(), abs=1)
    drawn = mosaic_rect(mosaic, 10, 20, 100, 50)  # as "Draw on canvas" leaves it
    dialog.area.setOutputExtentFromUser(drawn, MERCATOR)
    request = dialog.refine_job().fetch.request
    assert request.bbox == pytest.approx(
        (drawn.xMinimum(), drawn.yMinimum(), drawn.xMaximum(), drawn.yMaximum())
    )
    width, height = request.plan().window[2:]  # the box shows (and gives back) rounded numbers
    assert abs(width - 100) <= 1 and abs(height - 50) <= 1
    dialog.project_changed()  # a new project: the map view again
    view = canvas.extent()
    assert dialog.refine_job().fetch.request.bbox == pytest.approx(
        (view.xMinimum(), view.yMinimum(), view.xMaximum(), view.yMaximum())
    )


def test_a_wms_layer_is_fetched_over_the_view_and_refined(
    setup, mosaic, qgis_iface, wait_until, wait_for_tasks
) -> None:  # noqa: ANN001
    controller, dialog, canvas, folder = setup
    with serve_tiles(mosaic, ZOOM) as server:
        layer = wms_layer(server.wms_url)
        assert layer.isValid(), layer.error().summary()
        QgsProject.instance().addMapLayer(layer)
        dialog.input_combo.setLayer(layer)
        canvas.setExtent(mosaic_rect(mosaic, 300, 250, 400, 300))
        job = dialog.refine_job()
        fetched = job.fetch.request.out
        refine_and_wait(controller, job, wait_until, wait_for_tasks)
        served = len(server.served)
    said = " ".join(qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Success))
    assert f"Fetched {served} tiles (" in said and "from Local WMS" in said
    ds = gdal.Open(str(fetched))
    assert ds.GetSpatialRef().GetAuthorityCode(None) == "3857"
    assert ds.GetGeoTransform()[1] == pytest.approx(0.6 / 0.9207, rel=1e-3)  # 0.6 m on the ground
    assert (ds.ReadAsArray() > 0).mean() > 0.9  # the mosaic's pixels, not blank


def test_a_file_of_the_same_name_is_never_taken(setup, mosaic) -> None:  # noqa: ANN001
    controller, dialog, canvas, folder = setup
    layer = xyz_layer("http://127.0.0.1:9/{z}/{x}/{y}.png")
    QgsProject.instance().addMapLayer(layer)
    dialog.input_combo.setLayer(layer)
    canvas.setExtent(mosaic_rect(mosaic, 0, 0, 300, 300))
    first = dialog.refine_job().fetch.request.out
    first.write_bytes(b"someone else's file")
    second = dialog.refine_job().fetch.request.out
    assert second == first.with_name(f"{first.stem}_2.tif")
    assert first.read_bytes() == b"someone else's file"


def test_processing_and_training_say_how_to_use_an_online_layer(qgis_new_project) -> None:  # noqa: ANN001
    from map_refiner.ui.sources import raster_path

    with pytest.raises(
        MapRefinerError, match="online layer: refine it from the Map Refiner dialog"
    ):
        raster_path(xyz_layer("http://127.0.0.1:9/{z}/{x}/{y}.png"))
