"""Output-file safety: never overwrite inputs, write atomically, clean up on failure.

Every output is written under a hidden temporary name beside its target
(``.<stem>.<8 hex>.partial<suffix>``, same folder so the final rename is
atomic) and renamed into place only when complete. A process killed mid-write
cannot remove its temporary file; the next write to the same target deletes
such leftovers. On POSIX a live writer holds an advisory lock on its temporary
file, so only files whose writer is gone are deleted; on Windows an open file
cannot be deleted, which protects live writers the same way.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Union

from ..errors import MapRefinerError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
_FULL = "Free some space or choose another folder."
_READ_ONLY = "Choose a writable folder."
_DISK_ERRORS = {
    errno.ENOSPC: ("the disk is full", _FULL),
    errno.EDQUOT: ("the disk quota is exceeded", _FULL),
    errno.EROFS: ("the folder is on a read-only disk", _READ_ONLY),
    errno.EACCES: ("permission was denied", _READ_ONLY),
    errno.EPERM: ("permission was denied", _READ_ONLY),
}


def input_files(path: PathLike) -> list[Path]:
    """``path`` and, when GDAL reads it, every file GDAL says belongs to it (a world file,
    ``.aux.xml`` statistics, ``.ovr`` overviews, a Shapefile's parts)."""
    files = [Path(path)]
    if _special(Path(path)):
        return files  # opening a FIFO would block until a writer comes
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        ds = gdal.OpenEx(str(path), gdal.OF_RASTER | gdal.OF_VECTOR | gdal.OF_READONLY)
        listed = ds.GetFileList() if ds is not None else None
    except Exception:  # noqa: BLE001 - not a GDAL dataset: the path alone
        listed = None
    finally:
        gdal.PopErrorHandler()
    for f in listed or []:
        if not str(f).startswith("/vsi") and Path(f) not in files:
            files.append(Path(f))
    return files


def _special(path: Path) -> bool:
    """A FIFO, socket or device (neither a file nor a folder)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_output_path(
    out: PathLike, inputs: Iterable[PathLike] = (), overwrite: bool = False
) -> Path:
    """Refuse outputs that would clobber an input (or one of its files: its world file,
    statistics, overviews) or an existing file, and outputs that are not regular files."""
    out = Path(out)
    expanded = [f for inp in inputs if inp for f in input_files(inp)]
    for inp in expanded:
        if inp and Path(inp).exists() and out.exists() and os.path.samefile(out, inp):
            raise MapRefinerError(
                f"The output {out} is one of the inputs; choose another output file."
            )
        if inp and Path(inp).resolve() == out.resolve():
            raise MapRefinerError(
                f"The output {out} is one of the inputs; choose another output file."
            )
    if out.is_dir():
        raise MapRefinerError(f"{out} is a folder; give the output a file name.")
    if out.exists() and not out.is_file():
        raise MapRefinerError(
            f"{out} is not a regular file (a pipe or a device); give the output a file name."
        )
    if out.exists() and not overwrite:
        raise MapRefinerError(f"{out} already exists; choose another name or allow overwriting it.")
    parent = out.parent if str(out.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise MapRefinerError(f"{parent} is a file, not a folder; choose an output in a folder.")
    if not parent.is_dir():
        raise MapRefinerError(f"The output folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK):
        raise MapRefinerError(f"The output folder {parent} is not writable; choose another one.")
    return out


def check_geotiff_name(out: PathLike, what: str, hint: str = "") -> None:
    """A raster output is written as a GeoTIFF: a name that says another format (a
    ``.gpkg``, a ``.png``) would leave a GeoTIFF under it, which other tools misread."""
    if Path(out).suffix.lower() not in (".tif", ".tiff"):
        raise MapRefinerError(
            f"The {what} is written as a GeoTIFF: give it a .tif name, not {Path(out).name}{hint}."
        )


def write_error(path: PathLike, exc: BaseException) -> MapRefinerError:
    """A failed write as one actionable line (disk full, read-only, ...)."""
    path = Path(path)
    reason, advice = failure_reason(path, exc)
    return MapRefinerError(
        f"Writing {path.name} failed: {reason}; nothing was written to {path.parent}. {advice}",
        details=repr(exc),
    )


def failure_reason(path: Path, exc: BaseException) -> tuple[str, str]:
    """Why writing ``path`` failed, and what to do, from the error raised."""
    if not path.parent.is_dir():
        return (
            f"the folder {path.parent} was removed while writing",
            "Create the folder again and rerun.",
        )
    code = getattr(exc, "errno", None)
    text = str(exc)
    found = _DISK_ERRORS.get(code) if code else None
    if found is None:  # GDAL and safetensors report errno only as text, if at all
        found = next((v for c, v in _DISK_ERRORS.items() if os.strerror(c) in text), None)
    if found is None and _nearly_full(path.parent):
        found = _DISK_ERRORS[errno.ENOSPC]
    said = text.splitlines()[0] if text else type(exc).__name__
    return found or (
        f"the system said: {said}",
        "Check the folder and the disk, or choose another folder.",
    )


def _nearly_full(folder: Path, margin: int = 1 << 20) -> bool:
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def temp_sibling(path: Path) -> Path:
    """A hidden temporary name beside ``path`` (same filesystem, so rename is atomic)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")


def _partial_name(path: Path) -> re.Pattern[str]:
    return re.compile(
        re.escape(f".{path.stem}.")
        + r"[0-9a-f]{8}"
        + re.escape(f".partial{path.suffix}")
        + r"(\.aux\.xml)?"
    )


def claim_temp(path: Path) -> tuple[Path, IO[bytes] | None]:
    """Clean stale temporaries of ``path``, then create a new one, locked while we live.

    Returns the temporary path and the open lock handle (None on Windows);
    close the handle once the temporary file has been renamed or removed.
    """
    remove_stale_partials(path)
    tmp = temp_sibling(path)
    handle: IO[bytes] | None = None
    if fcntl is not None:
        try:
            handle = open(tmp, "xb")  # noqa: SIM115 - held open for the lock's lifetime
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if handle is not None:
                handle.close()
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise MapRefinerError(
                f"Cannot create {path.name} in {path.parent} "
                f"({exc.strerror or exc}); check the folder is writable and "
                "has space, and that the name is not too long.",
                details=repr(exc),
            ) from exc
    return tmp, handle


SCRATCH_LOCK = ".lock"


@contextlib.contextmanager
def scratch_folder(path: Path) -> Iterator[Path]:
    """A hidden folder beside ``path`` for a run's intermediate files, locked while the
    run lives and removed at its end; a folder of an earlier run that was killed (its
    lock free) is removed first, as stale temporaries are."""
    remove_stale_scratch(path)
    folder = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.scratch")
    try:
        folder.mkdir()
        handle = open(folder / SCRATCH_LOCK, "xb")  # noqa: SIM115 - held for the run
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise MapRefinerError(
            f"Cannot create a scratch folder beside {path.name} in {path.parent} "
            f"({exc.strerror or exc}); check the folder is writable and has space.",
            details=repr(exc),
        ) from exc
    try:
        yield folder
    finally:
        release(handle)
        shutil.rmtree(folder, ignore_errors=True)


def remove_stale_scratch(path: Path) -> list[Path]:
    """Delete scratch folders beside ``path`` whose run is gone (no live lock inside)."""
    pattern = re.compile(re.escape(f".{path.stem}.") + r"[0-9a-f]{8}\.scratch")
    removed: list[Path] = []
    try:
        candidates = [p for p in path.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return removed
    for folder in candidates:
        lock = folder / SCRATCH_LOCK
        if lock.exists() and not _remove_if_unlocked(lock):
            continue  # a live run holds it
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if removed:
        log.info("removed %d stale scratch folder(s) beside %s", len(removed), path.name)
    return removed


def release(handle: IO[bytes] | None) -> None:
    if handle is not None:
        with contextlib.suppress(OSError):
            handle.close()


def remove_stale_partials(path: Path) -> list[Path]:
    """Delete temporaries beside ``path`` whose writer is gone (e.g. killed)."""
    pattern = _partial_name(path)
    removed: list[Path] = []
    try:
        candidates = sorted(p for p in path.parent.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return removed
    for cand in candidates:
        if cand.name.endswith(".aux.xml"):
            continue  # removed with its raster below, or when the raster is already gone
        if _remove_if_unlocked(cand):
            removed.append(cand)
    for cand in candidates:
        if cand.name.endswith(".aux.xml") and not cand.with_name(cand.name[:-8]).exists():
            with contextlib.suppress(OSError):
                cand.unlink()
                removed.append(cand)
    if removed:
        log.info("removed %d stale temporary file(s) beside %s", len(removed), path.name)
    return removed


def _remove_if_unlocked(cand: Path) -> bool:
    if fcntl is None:
        try:
            cand.unlink()  # fails while another process has it open
        except OSError:
            return False
        return True
    try:
        with open(cand, "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # a live writer holds it
            cand.unlink()
            return True
    except OSError:
        return False


def place(tmp: Path, final: Path, overwrite: bool) -> None:
    """Move a finished temporary file onto its target. Without ``overwrite`` the target
    must still not exist at this moment (a hard link fails if it does), so that of two
    runs racing to the same new name the second fails instead of replacing the first."""
    appeared = MapRefinerError(
        f"{final} appeared while this run was writing it (another run?); it was left as "
        "it is. Run again with another name, or allow overwriting it."
    )
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise appeared from None
    except OSError:  # a filesystem without hard links: check, then rename
        if final.exists():
            raise appeared from None
        os.replace(tmp, final)
        return
    tmp.unlink()


def remove_stale_sidecars(final: Path) -> None:
    """After ``final`` was replaced: the old file's overviews and statistics go with it,
    so that QGIS never shows the old map at small scales."""
    for side in (Path(str(final) + ".ovr"), sidecar(final)):
        with contextlib.suppress(FileNotFoundError):
            side.unlink()


def sidecar(path: Path) -> Path:
    """GDAL's ``.aux.xml`` beside ``path`` (category names, statistics)."""
    return Path(str(path) + ".aux.xml")


def adopt_sidecar(tmp: Path, final: Path) -> None:
    """After ``tmp`` was placed at ``final``: the old file's overviews and statistics go,
    and ``tmp``'s own sidecar (a class map's category names) becomes ``final``'s."""
    remove_stale_sidecars(final)
    if sidecar(tmp).exists():
        os.replace(sidecar(tmp), sidecar(final))


@contextlib.contextmanager
def atomic_path(path: PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path; move it to ``path`` only if the block succeeds (without
    ``overwrite``, only if ``path`` still does not exist then).

    An ``OSError`` while writing (disk full, read-only folder) becomes a
    :class:`MapRefinerError` that says so.
    """
    path = Path(path)
    tmp, handle = claim_temp(path)
    try:
        yield tmp
        place(tmp, path, overwrite)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise write_error(path, exc) from exc
        raise
    finally:
        release(handle)
