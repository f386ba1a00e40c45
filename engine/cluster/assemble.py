"""The driver's last step: the finished parts into the final GeoTIFF (written under a
temporary name and renamed, like every output), or into a VRT over the parts. The
outputs of one refine (class map, scores, coarse map) are moved into place together:
a failure while assembling them leaves none (engine/rasters/group.py)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from xml.sax.saxutils import escape

from osgeo import gdal

from ..modelfile.config import ModelConfig
from ..rasters.files import write_error
from ..rasters.group import paths_together, writer_group
from ..rasters.read import RasterInfo, open_raster
from ..rasters.write import CLASS_NODATA, RefinedWriter, refined_writer, style_class_band
from ..refine.memory import bounded_memory
from .job import ClusterJob
from .parts import part_path

gdal.UseExceptions()
STRIP_ROWS = 512  # rows copied at a time: memory stays flat whatever a block's size


def assemble_geotiff(job: ClusterJob, info: RasterInfo, config: ModelConfig) -> None:
    """Copy every part into the output GeoTIFF(s) (class map, scores, coarse map)."""
    p = job.params
    names, colours = config.class_names, config.colours
    with (
        bounded_memory(),
        writer_group() as group,  # the class map, scores and coarse map: all or none
        refined_writer(
            info,
            Path(p.out),
            names,
            colours,
            Path(p.scores) if p.scores else None,
            job.description,
            p.overwrite,
            group,
        ) as writer,
        (
            refined_writer(info, Path(p.coarse), names, colours, None, "", p.overwrite, group)
            if p.coarse is not None
            else contextlib.nullcontext()
        ) as coarse,
    ):
        for b in job.blocks:
            cls = open_raster(part_path(job.parts, b.index))
            scores = open_raster(part_path(job.parts, b.index, "scores")) if p.scores else None
            for y in range(0, b.y1 - b.y0, STRIP_ROWS):
                rows = min(STRIP_ROWS, b.y1 - b.y0 - y)
                c = cls.ReadAsArray(0, y, b.x1 - b.x0, rows)
                s = scores.ReadAsArray(0, y, b.x1 - b.x0, rows) if scores else None
                writer.write(b.x0, b.y0 + y, c, None if s is None else s.reshape(-1, *c.shape))
        if coarse is not None:
            _copy_coarse(job, coarse)


def _copy_coarse(job: ClusterJob, coarse: RefinedWriter) -> None:
    for b in job.blocks:
        ds = open_raster(part_path(job.parts, b.index, "coarse"))
        for y in range(0, b.y1 - b.y0, STRIP_ROWS):
            rows = min(STRIP_ROWS, b.y1 - b.y0 - y)
            coarse.write(b.x0, b.y0 + y, ds.ReadAsArray(0, y, b.x1 - b.x0, rows))


def assemble_vrts(job: ClusterJob, info: RasterInfo, config: ModelConfig) -> None:
    """A VRT over the parts for each output asked (the parts stay where they are)."""
    p = job.params
    wanted = [(Path(p.out), "map", job.description)]
    if p.scores is not None:
        wanted.append((Path(p.scores), "scores", ""))
    if p.coarse is not None:
        wanted.append((Path(p.coarse), "coarse", ""))
    with paths_together([out for out, _, _ in wanted], p.overwrite) as temps:
        for tmp, (out, kind, description) in zip(temps, wanted):
            try:
                _vrt(job, info, config, tmp, out, kind, description)
            except (OSError, RuntimeError) as exc:  # GDAL's: a full disk, the folder gone
                raise write_error(out, exc) from exc


def _vrt(
    job: ClusterJob,
    info: RasterInfo,
    config: ModelConfig,
    tmp: Path,
    out: Path,
    kind: str,
    description: str,
) -> None:
    """The VRT of ``kind`` for ``out``, written at ``tmp`` (its sources relative to ``out``)."""
    bands = len(config.class_names) if kind == "scores" else 1
    dtype = gdal.GDT_Float32 if kind == "scores" else gdal.GDT_Byte
    ds = gdal.GetDriverByName("VRT").Create(str(tmp), info.width, info.height, 0)
    ds.SetGeoTransform(info.geotransform)
    if info.projection:
        ds.SetProjection(info.projection)
    for i in range(bands):
        ds.AddBand(dtype)
        band = ds.GetRasterBand(i + 1)
        for b in job.blocks:
            band.SetMetadataItem(
                f"source_{b.index}", _source(job, b.index, kind, i + 1, out), "new_vrt_sources"
            )
        if kind == "scores":
            band.SetDescription(f"P({config.class_names[i]})")
            band.SetNoDataValue(-1.0)
        else:
            style_class_band(band, config.class_names, config.colours)
            band.SetNoDataValue(CLASS_NODATA)
            if description:
                band.SetDescription(description)
    ds.FlushCache()
    ds = None  # noqa: F841 - written on close


def _source(job: ClusterJob, index: int, kind: str, band: int, out: Path) -> str:
    b = job.blocks[index]
    rel = os.path.relpath(part_path(job.parts, index, kind), Path(out).resolve().parent)
    w, h = b.x1 - b.x0, b.y1 - b.y0
    return (
        f'<SimpleSource><SourceFilename relativeToVRT="1">{escape(rel)}</SourceFilename>'
        f"<SourceBand>{band}</SourceBand>"
        f'<SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>'
        f'<DstRect xOff="{b.x0}" yOff="{b.y0}" xSize="{w}" ySize="{h}"/></SimpleSource>'
    )
