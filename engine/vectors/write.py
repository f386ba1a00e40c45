"""Vector outputs (Shapefile or GeoPackage) written in a temporary folder beside
the target and moved into place only when complete."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from osgeo import gdal, ogr, osr

from ..errors import MapRefinerError
from ..rasters.files import check_output_path, place, write_error
from .inuse import write_lock

gdal.UseExceptions()
ogr.UseExceptions()
PathLike = Union[str, Path]
DRIVERS = {".shp": "ESRI Shapefile", ".gpkg": "GPKG"}
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
_SHAPEFILE_EXTRAS = (".qix", ".sbn", ".sbx", ".qmd")  # stale indexes and metadata of an old file


@dataclass(frozen=True)
class VectorTarget:
    """Where a vector output goes, and the files that make it up."""

    path: Path
    driver: str
    overwrite: bool = True  # without it, a file that appears meanwhile is never replaced

    @classmethod
    def for_path(
        cls, out: PathLike, inputs: Iterable[PathLike] = (), overwrite: bool = False
    ) -> VectorTarget:
        """Check the extension and every file the output will occupy."""
        out = Path(out)
        driver = DRIVERS.get(out.suffix.lower())
        if driver is None:
            raise MapRefinerError(
                f"Cannot write {out.name}: use a .shp (Shapefile) or .gpkg (GeoPackage) file name."
            )
        target = cls(out, driver, overwrite)
        inputs = list(inputs)
        for part in target.parts():
            check_output_path(part, inputs, overwrite)
        return target

    def parts(self) -> list[Path]:
        if self.driver != "ESRI Shapefile":
            return [self.path]
        return [self.path.with_suffix(ext) for ext in SHAPEFILE_PARTS]

    @contextlib.contextmanager
    def writing(
        self, srs: osr.SpatialReference | None, geom_type: int = ogr.wkbPolygon
    ) -> Iterator[ogr.Layer]:
        """Yield a new layer; on success its files replace the target's, else all vanish."""
        tmp_dir = self.path.parent / f".{self.path.stem}.{uuid.uuid4().hex[:8]}.partial"
        try:
            tmp_dir.mkdir()
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        ds = layer = None
        try:
            ds = self._create(tmp_dir / self.path.name)
            transaction = self.driver == "GPKG"  # one commit: much faster than one per feature
            with self.write_errors():
                layer = ds.CreateLayer(self.path.stem, srs=srs, geom_type=geom_type)
                if transaction:
                    ds.StartTransaction()
            yield layer
            with self.write_errors():
                count = layer.GetFeatureCount()
                if transaction:
                    ds.CommitTransaction()
                ds.FlushCache()
                layer = ds = None  # closes the files; a failure here is only printed by GDAL
                self._check_complete(tmp_dir / self.path.name, count)
            try:
                self._move_into_place(tmp_dir)
            except OSError as exc:  # e.g. the folder was removed meanwhile
                raise write_error(self.path, exc) from exc
        finally:
            layer = ds = None
            shutil.rmtree(tmp_dir, ignore_errors=True)

    @contextlib.contextmanager
    def write_errors(self) -> Iterator[None]:
        """GDAL's write failures (disk full, quota, I/O) as one user-facing message."""
        try:
            yield
        except RuntimeError as exc:
            raise write_error(self.path, exc) from exc

    def _check_complete(self, path: Path, count: int) -> None:
        """Reopen what was written: the count must match (closing may have failed quietly)."""
        written = gdal.OpenEx(str(path), gdal.OF_VECTOR | gdal.OF_READONLY)
        found = written.GetLayer(0).GetFeatureCount() if written.GetLayerCount() else -1
        written = None
        if found != count:
            raise RuntimeError(f"{count} features written but {found} read back")

    def _create(self, path: Path) -> gdal.Dataset:
        try:
            return gdal.GetDriverByName(self.driver).Create(str(path), 0, 0, 0, gdal.GDT_Unknown)
        except RuntimeError as exc:
            raise write_error(self.path, exc) from exc

    def _move_into_place(self, tmp_dir: Path) -> None:
        written = sorted(tmp_dir.iterdir())
        names = {p.name for p in written}
        stale = [
            p
            for p in self.parts() + [self.path.with_suffix(e) for e in _SHAPEFILE_EXTRAS]
            if self.driver == "ESRI Shapefile" and p.name not in names
        ]
        lock = write_lock(self.path) if self.driver == "GPKG" else contextlib.nullcontext()
        with lock:
            for src in written:
                place(src, self.path.parent / src.name, self.overwrite)
        if self.driver == "GPKG":  # an old file's SQLite journal must never meet the new one
            for suffix in ("-wal", "-shm", "-journal"):
                with contextlib.suppress(FileNotFoundError):
                    Path(str(self.path) + suffix).unlink()
        for old in stale:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
