"""The before/after figure of regularize_eval: a scene's image with the reference
outlines and the refined map's raw or regularised building outlines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal, ogr, osr

gdal.UseExceptions()
ogr.UseExceptions()


def outlines_figure(
    image: Path,
    reference: Path,
    panels: list[tuple[str, Path]],
    out: Path,
    window: tuple[int, int, int, int] | None = None,
) -> Path | None:
    """One panel per ``(title, polygons)``: the image (a ``(x0, y0, w, h)`` pixel
    window, default all of it), the reference outlines in cyan, the polygons in red.
    None when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ds = gdal.Open(str(image))
    x0, y0, w, h = window or (0, 0, ds.RasterXSize, ds.RasterYSize)
    gt = ds.GetGeoTransform()
    img = ds.ReadAsArray(x0, y0, w, h)[:3].transpose(1, 2, 0)
    left, top = gt[0] + x0 * gt[1], gt[3] + y0 * gt[5]
    extent = (left, left + w * gt[1], top + h * gt[5], top)
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 6.8))
    for ax, (title, path) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img, extent=extent)
        for rings, colour, width in (
            (_rings(reference, srs), "cyan", 1.0),
            (_rings(path, srs), "red", 1.3),
        ):
            for xy in rings:
                ax.plot(xy[:, 0], xy[:, 1], color=colour, linewidth=width)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def _rings(path: Path, srs: osr.SpatialReference) -> list[np.ndarray]:
    """Every ring of a polygon layer, in ``srs``."""
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    src = lyr.GetSpatialRef().Clone()
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dst = srs.Clone()
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(src, dst)
    out = []
    for feat in lyr:
        geom = ogr.ForceToMultiPolygon(feat.GetGeometryRef().Clone())
        geom.Transform(ct)
        for p in range(geom.GetGeometryCount()):
            poly = geom.GetGeometryRef(p)
            for r in range(poly.GetGeometryCount()):
                out.append(np.array(poly.GetGeometryRef(r).GetPoints())[:, :2])
    return out
