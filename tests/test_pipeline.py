"""refine_raster end to end on synthetic GeoTIFFs: what lands on disk, and what never does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_engine import random_model, scene, write_image
from osgeo import gdal

from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.engine.networks.inference import run_networks
from map_refiner.engine.refine.pipeline import RefineParams, refine_array, refine_raster

gdal.UseExceptions()
NAMES = ("background", "building", "road")
GT = (600000.0, 0.4, 0.0, 5000000.0, 0.0, -0.4)


@pytest.fixture(scope="module")
def model():
    return random_model(NAMES, resolution_m=0.6, seed=21)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    arr = scene(90, 110, seed=22)
    arr[:, 10:30, 60:100] = 255  # a no-data hole (scene() stays below 255)
    write_image(tmp_path / "in.tif", arr, GT, nodata=255)
    return tmp_path / "in.tif"


def params(image: Path, out: Path, **kw) -> RefineParams:
    kw.setdefault("device", "cpu")
    kw.setdefault("tile_size", 48)
    return RefineParams(image=image, out=out, **kw)


def test_class_map_on_disk(tmp_path: Path, image: Path, model) -> None:
    out = tmp_path / "classes.tif"
    res = refine_raster(params(image, out, iterations=3), model=model)
    assert res.out == out and res.iterations == 3 and res.tiles > 1
    assert res.class_names == list(NAMES)
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (110, 90, 1)
    assert ds.GetGeoTransform() == pytest.approx(GT)
    assert ds.GetSpatialRef().IsSame(gdal.Open(str(image)).GetSpatialRef())
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 255
    assert band.GetCategoryNames()[:3] == list(NAMES)  # metadata read above, see GDAL 3.6
    ct = band.GetColorTable()
    for i, c in enumerate(model[1].classes):
        assert ct.GetColorEntry(i)[:3] == tuple(c.colour)
    arr = band.ReadAsArray()
    assert (arr[10:30, 60:100] == 255).all()
    assert set(np.unique(arr[40:, :])) <= {0, 1, 2} and len(np.unique(arr[40:, :])) >= 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "classes.tif",
        "classes.tif.aux.xml",
        "in.tif",
    ]


def test_category_names_read_first_thing(tmp_path: Path, image: Path, model) -> None:
    out = tmp_path / "classes.tif"
    refine_raster(params(image, out, iterations=0), model=model)
    ds = gdal.Open(str(out))
    names = ds.GetRasterBand(1).GetCategoryNames()
    ds = None  # closed here, not by the garbage collector from xfail's traceback
    if not names:  # GDAL 3.6 loads the .aux.xml with the georeferencing
        pytest.xfail("GDAL 3.6 shows PAM category names only after the geotransform is read")
    assert names[:3] == list(NAMES)


def test_scores_are_probabilities(tmp_path: Path, image: Path, model) -> None:
    out, scores = tmp_path / "c.tif", tmp_path / "p.tif"
    refine_raster(params(image, out, scores=scores, iterations=2), model=model)
    ds = gdal.Open(str(scores))
    assert ds.RasterCount == 3 and ds.GetGeoTransform() == pytest.approx(GT)
    assert ds.GetRasterBand(2).DataType == gdal.GDT_Float32
    assert ds.GetRasterBand(2).GetDescription() == "P(building)"
    p = ds.ReadAsArray()
    cls = gdal.Open(str(out)).ReadAsArray()
    valid = cls != 255
    np.testing.assert_allclose(p[:, valid].sum(axis=0), 1.0, atol=1e-5)
    assert (p[:, valid] >= 0).all()
    assert (p[:, ~valid] == -1).all()
    np.testing.assert_array_equal(p.argmax(axis=0)[valid], cls[valid])


def test_zero_iterations_is_the_coarse_cnn(tmp_path: Path, model) -> None:
    # Same resolution as the model and a size divisible by 4: no resampling at all.
    image = tmp_path / "in.tif"
    arr = scene(64, 72, seed=23)
    write_image(image, arr, (600000.0, 0.6, 0.0, 5000000.0, 0.0, -0.6))
    net, cfg = model
    refine_raster(params(image, tmp_path / "c0.tif", iterations=0), model=model)
    got = gdal.Open(str(tmp_path / "c0.tif")).ReadAsArray()
    x = (torch.from_numpy(arr.astype(np.float32)) - 120.0) / 70.0
    with torch.no_grad():
        coarse = net.coarse(x[None])[0]
    tie = coarse.topk(2, dim=0).values
    tie = (tie[0] - tie[1] < 1e-4).numpy()
    assert ((got == coarse.argmax(0).numpy()) | tie).all()
    refine_raster(params(image, tmp_path / "c5.tif", iterations=5), model=model)
    assert (gdal.Open(str(tmp_path / "c5.tif")).ReadAsArray() != got).any()


def test_refuses_to_overwrite_the_input_or_an_existing_output(
    tmp_path: Path, image: Path, model
) -> None:
    before = image.read_bytes()
    with pytest.raises(MapRefinerError, match="one of the inputs"):
        refine_raster(params(image, image, overwrite=True), model=model)
    with pytest.raises(MapRefinerError, match="one of the inputs"):
        refine_raster(params(image, tmp_path / "." / "in.tif", overwrite=True), model=model)
    assert image.read_bytes() == before
    out = tmp_path / "out.tif"
    out.write_bytes(b"old")
    with pytest.raises(MapRefinerError, match="already exists"):
        refine_raster(params(image, out), model=model)
    assert out.read_bytes() == b"old"
    with pytest.raises(MapRefinerError, match="different files"):
        refine_raster(params(image, tmp_path / "x.tif", scores=tmp_path / "x.tif"), model=model)
    refine_raster(params(image, out, overwrite=True, iterations=1), model=model)
    assert gdal.Open(str(out)).RasterXSize == 110


def test_missing_output_folder_is_refused(tmp_path: Path, image: Path, model) -> None:
    with pytest.raises(MapRefinerError, match="does not exist"):
        refine_raster(params(image, tmp_path / "nope" / "out.tif"), model=model)


@pytest.mark.parametrize("with_scores", [False, True])
def test_cancel_after_first_tile_leaves_nothing(
    tmp_path: Path, image: Path, model, with_scores: bool
) -> None:
    calls: list[float] = []

    def cancelled() -> bool:
        return len(calls) >= 1

    p = params(
        image,
        tmp_path / "out.tif",
        iterations=2,
        scores=tmp_path / "scores.tif" if with_scores else None,
    )
    with pytest.raises(CancelledError):
        refine_raster(p, progress=calls.append, is_cancelled=cancelled, model=model)
    assert calls and calls[0] < 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_error_while_writing_leaves_nothing(
    tmp_path: Path, image: Path, model, monkeypatch
) -> None:
    from map_refiner.engine.refine import refine_pass

    def boom(*args, **kwargs):
        raise RuntimeError("simulated failure in the middle of the job")

    monkeypatch.setattr(refine_pass, "predict_tile", boom)
    with pytest.raises(RuntimeError):
        refine_raster(params(image, tmp_path / "out.tif", scores=tmp_path / "s.tif"), model=model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_progress_is_monotonic_and_reaches_one(tmp_path: Path, image: Path, model) -> None:
    seen: list[float] = []
    res = refine_raster(
        params(image, tmp_path / "out.tif", iterations=1), progress=seen.append, model=model
    )
    assert len(seen) == res.tiles > 3
    assert seen == sorted(seen) and all(0 < f <= 1 for f in seen)
    assert seen[-1] == pytest.approx(1.0)


def test_cuda_on_a_cpu_only_machine_is_a_clear_error(tmp_path: Path, image: Path, model) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(MapRefinerError, match="CUDA.*'cpu'"):
        refine_raster(params(image, tmp_path / "out.tif", device="cuda"), model=model)
    with pytest.raises(MapRefinerError, match="Unknown device"):
        refine_raster(params(image, tmp_path / "out.tif", device="tpu"), model=model)
    res = refine_raster(params(image, tmp_path / "out.tif", device="auto"), model=model)
    assert res.device == "cpu"


def test_mixed_precision_is_bf16_on_cuda_only_by_default(monkeypatch) -> None:
    from map_refiner.engine.device import inference_autocast

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert inference_autocast("auto", cpu) is None
    assert inference_autocast("fp32", cpu) is None and inference_autocast("fp32", cuda) is None
    assert inference_autocast("bf16", cpu) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert inference_autocast("auto", cuda) is torch.bfloat16
    assert inference_autocast(None, cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert inference_autocast("auto", cuda) is None  # e.g. a pre-Ampere GPU
    with pytest.raises(MapRefinerError, match="Unknown precision 'fp8'.*auto, fp32, bf16"):
        inference_autocast("fp8", cpu)


def test_device_line_says_whether_refines_use_mixed_precision(monkeypatch) -> None:
    from map_refiner.engine.device import describe_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert describe_devices().startswith("CPU only (")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA X")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert describe_devices() == "CUDA: NVIDIA X, bf16 mixed precision"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert describe_devices() == "CUDA: NVIDIA X"


def test_bf16_refine_runs_mixed_precision_and_keeps_the_map(
    tmp_path: Path, image: Path, model
) -> None:
    """The path a CUDA refine takes by default, run here under CPU autocast:
    the networks compute in bf16 (scores differ in the last digits), the
    class map stays that of fp32, the outputs stay float32, the message says so."""
    fp32 = refine_raster(
        params(image, tmp_path / "a.tif", iterations=3, scores=tmp_path / "as.tif"), model=model
    )
    bf16 = refine_raster(
        params(
            image, tmp_path / "b.tif", iterations=3, scores=tmp_path / "bs.tif", precision="bf16"
        ),
        model=model,
    )
    assert fp32.device == "cpu" and bf16.device == "cpu (bf16 mixed precision)"
    a, b = (gdal.Open(str(tmp_path / n)).ReadAsArray() for n in ("a.tif", "b.tif"))
    pa, pb = (gdal.Open(str(tmp_path / n)).ReadAsArray() for n in ("as.tif", "bs.tif"))
    assert gdal.Open(str(tmp_path / "bs.tif")).GetRasterBand(1).DataType == gdal.GDT_Float32
    assert not np.array_equal(pa, pb)  # bf16 really ran
    assert np.abs(pa - pb).max() < 0.02  # 0.004 when written
    assert np.array_equal(a == 255, b == 255)
    assert (a == b).mean() > 0.99  # 99.85% when written
    with pytest.raises(MapRefinerError, match="Unknown precision"):
        refine_raster(params(image, tmp_path / "c.tif", precision="half"), model=model)
    assert not (tmp_path / "c.tif").exists()


@pytest.mark.parametrize("w,h", [(7, 5), (1, 1), (3, 40)])
def test_raster_smaller_than_the_receptive_field(tmp_path: Path, model, w: int, h: int) -> None:
    image = tmp_path / "tiny.tif"
    write_image(image, scene(h, w, seed=24), GT)
    out = tmp_path / "out.tif"
    res = refine_raster(params(image, out, iterations=5, scores=tmp_path / "s.tif"), model=model)
    arr = gdal.Open(str(out)).ReadAsArray()
    assert arr.shape == (h, w) and res.tiles == 1
    assert set(np.unique(arr)) <= {0, 1, 2}


def test_raster_without_crs_needs_input_resolution(tmp_path: Path, model) -> None:
    image = tmp_path / "nocrs.tif"
    write_image(image, scene(30, 30, seed=25), (0, 1, 0, 0, 0, -1), epsg=None)
    with pytest.raises(MapRefinerError, match="--input-resolution"):
        refine_raster(params(image, tmp_path / "out.tif"), model=model)
    assert not (tmp_path / "out.tif").exists()
    refine_raster(params(image, tmp_path / "out.tif", input_resolution_m=0.4), model=model)
    assert gdal.Open(str(tmp_path / "out.tif")).GetProjection() == ""


def test_negative_iterations_refused(tmp_path: Path, image: Path, model) -> None:
    with pytest.raises(MapRefinerError, match="between 0 and"):
        refine_raster(params(image, tmp_path / "out.tif", iterations=-1), model=model)


def test_default_iterations_come_from_the_model(tmp_path: Path, image: Path) -> None:
    m = random_model(NAMES, resolution_m=0.6, seed=21, iterations=2)
    res = refine_raster(params(image, tmp_path / "out.tif"), model=m)
    assert res.iterations == 2
    ds = gdal.Open(str(tmp_path / "out.tif"))  # keep: a band must not outlive its dataset
    desc = ds.GetRasterBand(1).GetDescription()
    assert "2 RNN iterations" in desc


def test_uint16_and_float_inputs_refine(tmp_path: Path, model) -> None:
    base = scene(40, 44, seed=26).astype(np.float32)
    for dtype in (np.uint16, np.float32):
        image = tmp_path / f"in_{np.dtype(dtype).name}.tif"
        write_image(image, base.astype(dtype), GT)
        refine_raster(
            params(image, tmp_path / f"out_{np.dtype(dtype).name}.tif", iterations=1), model=model
        )
    a = gdal.Open(str(tmp_path / "out_uint16.tif")).ReadAsArray()
    b = gdal.Open(str(tmp_path / "out_float32.tif")).ReadAsArray()
    np.testing.assert_array_equal(a, b)


def test_refine_array_matches_the_file(tmp_path: Path, image: Path, model) -> None:
    out = tmp_path / "c.tif"
    refine_raster(params(image, out, iterations=3), model=model)
    logits, valid = refine_array(*model, gdal.Open(str(image)), 3, tile_size=48)
    cls = gdal.Open(str(out)).ReadAsArray()
    np.testing.assert_array_equal(cls == 255, ~valid)
    np.testing.assert_array_equal(cls[valid], logits.argmax(0)[valid])


def test_run_networks_crops_padding() -> None:
    net, _ = random_model(seed=27)
    out = run_networks(net, torch.randn(3, 10, 13), 2)
    assert out.shape == (2, 10, 13)
    traj = run_networks(net, torch.randn(3, 10, 13), 2, trajectory=True)
    assert traj.shape == (3, 2, 10, 13)


@pytest.mark.parametrize("keep", [[0, 3], [3], [0], [3, 0], [1, 3], [0, 2, 3]])
def test_run_networks_keeps_the_asked_iterations(keep) -> None:
    net, _ = random_model(seed=28)
    image = torch.randn(3, 30, 26, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        traj = run_networks(net, image, 3, trajectory=True)
        got = run_networks(net, image, 3, keep=keep)
    assert got.shape == (len(keep),) + traj.shape[1:]
    for g, i in zip(got, keep):
        assert torch.equal(g, traj[i]), f"iteration {i}"


def test_model_from_file_gives_the_same_map(tmp_path: Path, image: Path, model) -> None:
    from map_refiner.engine.modelfile.io import save_model

    net, cfg = model
    path = save_model(net, cfg, tmp_path / "m.safetensors")
    a = refine_raster(params(image, tmp_path / "a.tif", model_path=path, iterations=1))
    refine_raster(params(image, tmp_path / "b.tif", iterations=1), model=model)
    assert a.class_names == list(NAMES)
    np.testing.assert_array_equal(
        gdal.Open(str(tmp_path / "a.tif")).ReadAsArray(),
        gdal.Open(str(tmp_path / "b.tif")).ReadAsArray(),
    )
    with pytest.raises(MapRefinerError, match="one of the inputs"):
        refine_raster(params(image, path, model_path=path, overwrite=True))


@pytest.mark.parametrize("which", ["out", "scores"])
def test_a_folder_as_output_is_refused_even_with_overwrite(
    tmp_path: Path, image: Path, model, which: str
) -> None:
    folder = tmp_path / "a_folder"
    folder.mkdir()
    kw = {"scores": folder} if which == "scores" else {}
    out = folder if which == "out" else tmp_path / "out.tif"
    with pytest.raises(MapRefinerError, match="folder"):
        refine_raster(params(image, out, overwrite=True, **kw), model=model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder", "in.tif"]
    assert not any(folder.iterdir())


def test_scores_file_that_cannot_be_created_leaves_nothing(
    tmp_path: Path, image: Path, model
) -> None:
    # A legal name whose hidden temporary sibling is longer than the 255 bytes allowed.
    scores = tmp_path / ("s" * 240 + ".tif")
    with pytest.raises(MapRefinerError, match="Cannot create"):
        refine_raster(params(image, tmp_path / "out.tif", scores=scores), model=model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_reporter_maps_sub_jobs_and_cancels() -> None:
    from map_refiner.engine.progress import make_reporter

    seen: list[float] = []
    stop = {"now": False}
    rep = make_reporter(seen.append, lambda: stop["now"])
    second = rep.sub(0.5, 1.0)
    quarter = second.sub(0.0, 0.5)
    quarter.report(1.0)
    second.report(2.0)  # clamped
    rep.sub(0.0, 0.5).report(-1.0)
    assert seen == [0.75, 1.0, 0.0]
    quarter.check()
    stop["now"] = True
    with pytest.raises(CancelledError, match="no output was written"):
        quarter.check()
    assert isinstance(CancelledError(), MapRefinerError)
    make_reporter().report(0.3)  # no callbacks: a no-op


def test_coarse_map_beside_the_refined_one(tmp_path: Path, image: Path, model) -> None:
    """``coarse``: the CNN's own class map, as a refine with 0 iterations gives it;
    the refined map is the same as without it."""
    both = refine_raster(
        params(image, tmp_path / "r.tif", iterations=3, coarse=tmp_path / "c.tif"), model=model
    )
    assert both.coarse == tmp_path / "c.tif"
    alone = refine_raster(params(image, tmp_path / "r_alone.tif", iterations=3), model=model)
    zero = refine_raster(params(image, tmp_path / "zero.tif", iterations=0), model=model)
    assert alone.coarse is None

    def read(p: Path) -> np.ndarray:
        return gdal.Open(str(p)).ReadAsArray()

    assert np.array_equal(read(both.out), read(alone.out))
    coarse, cnn = read(tmp_path / "c.tif"), read(zero.out)
    assert np.mean(coarse == cnn) > 0.999  # tile halos differ with T: float rounding
    assert not np.array_equal(coarse, read(both.out))
    ds = gdal.Open(str(tmp_path / "c.tif"))
    ds.GetGeoTransform()  # GDAL 3.6: category names after georef
    assert ds.GetRasterBand(1).GetCategoryNames()[:3] == list(NAMES)


def test_coarse_map_refusals_and_cancel(tmp_path: Path, image: Path, model) -> None:
    for bad in (tmp_path / "out.tif", image):
        with pytest.raises(MapRefinerError):
            refine_raster(params(image, tmp_path / "out.tif", coarse=bad), model=model)
    with pytest.raises(MapRefinerError, match="different files"):
        refine_raster(
            params(
                image, tmp_path / "out.tif", coarse=tmp_path / "x.tif", scores=tmp_path / "x.tif"
            ),
            model=model,
        )
    calls: list[float] = []
    with pytest.raises(CancelledError):
        refine_raster(
            params(image, tmp_path / "out.tif", iterations=2, coarse=tmp_path / "c.tif"),
            progress=calls.append,
            is_cancelled=lambda: len(calls) >= 1,
            model=model,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_each_tile_is_read_once(tmp_path: Path, image: Path, model, monkeypatch) -> None:
    """The tile's valid mask comes from the read of its model window."""
    from map_refiner.engine.refine import predict

    reads = []
    real = predict.read_window

    def counted(*args, **kwargs):
        reads.append(args[2:])
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "read_window", counted)
    res = refine_raster(params(image, tmp_path / "out.tif", iterations=2), model=model)
    assert len(reads) == res.tiles > 3
