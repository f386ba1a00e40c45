"""A model of red, green and blue bands reads the bands an image names so, whatever
their order (rasters.read.colour_bands, predict.stack_bands; session 39): an image stored
blue-green-red with its colours named refines as the red-green-blue original; bands
named nothing, or a colour twice, are read in the model's own order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers_engine import make_tif, random_model, write_paletted
from osgeo import gdal

from map_refiner.engine.modelfile.io import save_model
from map_refiner.engine.rasters.read import colour_bands
from map_refiner.engine.refine.pipeline import RefineParams, refine_raster
from map_refiner.engine.refine.predict import stack_bands

RED, GREEN, BLUE = gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand
RGB = ("red", "green", "blue")


def reordered(src: Path, out: Path, order: list[int], interps: list[int]) -> Path:
    """``src``'s bands in ``order`` (1-based), their colour interpretations ``interps``."""
    ds = gdal.Open(str(src))
    drv = gdal.GetDriverByName("GTiff")
    out_ds = drv.Create(str(out), ds.RasterXSize, ds.RasterYSize, len(order), gdal.GDT_Byte)
    out_ds.SetGeoTransform(ds.GetGeoTransform())
    out_ds.SetProjection(ds.GetProjection())
    for i, (b, interp) in enumerate(zip(order, interps), start=1):
        band = out_ds.GetRasterBand(i)
        band.WriteArray(ds.GetRasterBand(b).ReadAsArray())
        band.SetColorInterpretation(interp)
    out_ds = None
    return out


def test_the_named_colours_are_found_in_any_order(tmp_path: Path) -> None:
    image = make_tif(tmp_path / "img.tif", 40, 50, seed=1)
    undefined = gdal.GCI_Undefined
    cases = [
        ([3, 2, 1], [BLUE, GREEN, RED], [3, 2, 1]),
        ([1, 2, 3, 1], [RED, GREEN, BLUE, undefined], [1, 2, 3]),  # RGB + near infrared
        ([3, 2, 1, 1], [BLUE, GREEN, RED, undefined], [3, 2, 1]),  # BGR + near infrared
        ([1, 2, 3], [undefined] * 3, None),
        ([1, 2, 3], [RED, RED, BLUE], None),
    ]
    for k, (order, interps, expected) in enumerate(cases):
        path = reordered(image, tmp_path / f"c{k}.tif", order, interps)
        assert colour_bands(gdal.Open(str(path)), RGB) == expected


def test_a_blue_green_red_image_refines_as_its_red_green_blue_original(tmp_path: Path) -> None:
    image = make_tif(tmp_path / "img.tif", 70, 80, seed=2)
    net, config = random_model(resolution_m=0.6, seed=4)
    config.band_names = list(RGB)
    model = save_model(net, config, tmp_path / "m.safetensors")
    rgb = reordered(image, tmp_path / "rgb.tif", [1, 2, 3], [RED, GREEN, BLUE])
    bgr = reordered(image, tmp_path / "bgr.tif", [3, 2, 1], [BLUE, GREEN, RED])
    maps = []
    for path in (rgb, bgr):
        out, scores = tmp_path / f"map_{path.stem}.tif", tmp_path / f"map_{path.stem}_s.tif"
        refine_raster(RefineParams(image=path, out=out, model_path=model, scores=scores))
        maps.append(gdal.Open(str(scores)).ReadAsArray())
    assert np.array_equal(maps[0], maps[1])
    assert stack_bands(gdal.Open(str(bgr)), [1, 2, 3], config) == [1, 2, 3]  # asked: as asked
    config.band_names = ["b0", "b1", "b2"]  # a model of other bands: its own order
    assert stack_bands(gdal.Open(str(bgr)), None, config) == [1, 2, 3]


def test_a_band_list_is_read_alike_by_the_cli_and_processing() -> None:
    import pytest

    from map_refiner import cli
    from map_refiner.engine.errors import MapRefinerError
    from map_refiner.engine.vocabulary import parse_bands

    assert parse_bands("3, 2,1") == [3, 2, 1] and parse_bands(" ") is None
    for bad in ("3,two,1", "0,1,2", "1,,2"):
        with pytest.raises(MapRefinerError, match="[Bb]and"):
            parse_bands(bad)
    assert cli.main(["refine", "x.tif", "--out", "y.tif", "--bands", "3,two,1"]) == 2


def test_a_paletted_image_refines_as_its_colours(tmp_path: Path) -> None:
    """One band of colour-table indices is no brightness (read as grey the model would see
    index numbers). Since session 43 it is read as the red, green and blue its table gives
    (rasters.read.open_image): the same map as the image expanded by gdal_translate
    -expand rgb, nothing written beside it, nothing left in GDAL's memory files. Session 40
    refused it with how to expand it."""
    from map_refiner.engine.rasters.read import EXPANDED_IN

    pct = write_paletted(tmp_path / "pct.tif", make_tif(tmp_path / "img.tif", 40, 50, seed=1))
    expanded = tmp_path / "pct_rgb.tif"
    gdal.Translate(str(expanded), str(pct), rgbExpand="rgb")
    model = save_model(*random_model(resolution_m=0.6, seed=3), tmp_path / "m.safetensors")
    before = sorted(p.name for p in tmp_path.iterdir())
    maps = []
    for k, path in enumerate((pct, expanded)):
        scores = tmp_path / f"s{k}.tif"
        refine_raster(
            RefineParams(image=path, out=tmp_path / f"map{k}.tif", model_path=model, scores=scores)
        )
        maps.append(gdal.Open(str(scores)).ReadAsArray())
    assert np.array_equal(maps[0], maps[1])
    outputs = ("map0.tif", "map1.tif", "s0.tif", "s1.tif")  # and their sidecars
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(outputs)) == before
    assert not gdal.ReadDir(EXPANDED_IN)


def test_an_expanded_palette_keeps_its_transparency_and_its_name(tmp_path: Path) -> None:
    """A palette with transparent entries (a PNG-8's) comes with an alpha band, which a
    refine reads as no data; the dataset names the user's file (messages name it)."""
    from map_refiner.engine.rasters.read import alpha_band, expanded, raster_info

    mem = gdal.GetDriverByName("MEM").Create("", 8, 6, 1, gdal.GDT_Byte)
    table = gdal.ColorTable()
    table.SetColorEntry(0, (10, 20, 30, 255))
    table.SetColorEntry(1, (200, 100, 50, 0))
    band = mem.GetRasterBand(1)
    band.SetRasterColorTable(table)
    band.SetColorInterpretation(gdal.GCI_PaletteIndex)
    values = np.zeros((6, 8), np.uint8)
    values[2:4, 3:6] = 1
    band.WriteArray(values)
    png = tmp_path / "scan.png"
    gdal.GetDriverByName("PNG").CreateCopy(str(png), mem)
    ds = expanded(gdal.Open(str(png)))
    assert ds.RasterCount == 4 and alpha_band(ds) == 4
    arr = ds.ReadAsArray()
    assert list(arr[:, 0, 0]) == [10, 20, 30, 255] and arr[3, 2, 3] == 0
    assert Path(raster_info(ds).path).name == "scan.png"
    assert not any(raster_info(ds).paletted)
    plain = gdal.Open(str(make_tif(tmp_path / "rgb.tif", 10, 12, seed=1)))
    assert expanded(plain) is plain  # any other raster as it is


def test_a_paletted_band_among_others_is_refused_with_how_to_expand_it() -> None:
    """Only a one-band paletted image is expanded (open_image); a paletted band in a raster
    of several (rare) is still refused with what to do."""
    import pytest

    from map_refiner.engine.errors import MapRefinerError
    from map_refiner.engine.rasters.read import RasterInfo, check_bands

    info = RasterInfo(
        "/data/two.tif",
        50,
        40,
        3,
        (0, 1, 0, 0, 0, -1),
        "",
        [None] * 3,
        (1, 1, 1),
        (True, False, False),
    )
    with pytest.raises(MapRefinerError, match="paletted image") as caught:
        check_bands(info, [1, 2, 3])
    assert "gdal_translate -expand rgb two.tif two_rgb.tif" in caught.value.message
    check_bands(info, [2, 3, 3])  # the other bands are read


def test_four_bands_that_name_no_colours_get_a_note_on_their_order(tmp_path: Path) -> None:
    """A blue-green-red-infrared satellite product without colour names is read 1, 2, 3
    (blue for red: austin_dev stored so reads 27.9 against 56.6); the refine says so and
    how to choose 3, 2, 1. Named colours, chosen bands or three bands: no note."""
    image = make_tif(tmp_path / "img.tif", 70, 80, seed=2)
    net, config = random_model(resolution_m=0.6, seed=4)
    config.band_names = list(RGB)
    model = save_model(net, config, tmp_path / "m.safetensors")
    undefined = gdal.GCI_Undefined
    bgrn = reordered(image, tmp_path / "bgrn.tif", [3, 2, 1, 1], [undefined] * 4)
    named = reordered(image, tmp_path / "named.tif", [3, 2, 1, 1], [BLUE, GREEN, RED, undefined])
    three = reordered(image, tmp_path / "three.tif", [1, 2, 3], [undefined] * 3)

    def note(path: Path, bands: list[int] | None = None) -> str:
        out = tmp_path / f"map_{path.stem}_{bands}.tif"
        params = RefineParams(image=path, out=out, model_path=model, bands=bands)
        return refine_raster(params).colour_note

    said = note(bgrn)
    assert "bands 1, 2, 3 were read as red, green and blue" in said
    assert "4 bands name no colours" in said and "choose bands 3, 2, 1" in said
    assert note(bgrn, [3, 2, 1]) == "" and note(named) == "" and note(three) == ""
    eight = reordered(image, tmp_path / "eight.tif", [1, 3, 2, 1, 1, 2, 3, 3], [undefined] * 8)
    assert "choose bands 5, 3, 2" in note(eight)
    config.band_names = ["b0", "b1", "b2"]  # a model of other bands: nothing to say
    other = save_model(net, config, tmp_path / "o.safetensors")
    out = tmp_path / "other.tif"
    assert refine_raster(RefineParams(image=bgrn, out=out, model_path=other)).colour_note == ""


def test_a_fine_tune_says_it_too(tmp_path: Path) -> None:
    """A user who refined with bands 3, 2, 1 and fine-tunes without them would teach the
    model the colours in another order: the fine-tune's message carries the same note."""
    from map_refiner.engine.refine.predict import bands_note

    image = make_tif(tmp_path / "img.tif", 40, 50, seed=1)
    _, config = random_model(resolution_m=0.6, seed=4)
    config.band_names = list(RGB)
    bgrn = reordered(image, tmp_path / "bgrn.tif", [3, 2, 1, 1], [gdal.GCI_Undefined] * 4)
    assert "choose bands 3, 2, 1" in bands_note(bgrn, None, config)
    assert bands_note(bgrn, [3, 2, 1], config) == ""
