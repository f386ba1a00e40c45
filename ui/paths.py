"""Default output names: beside the project or the input, never clobbering a file."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


def unique_path(path: Path) -> Path:
    """``path`` itself if free, else ``stem_2.ext``, ``stem_3.ext``, ..."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}_{n}{path.suffix}")
    return candidate


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (False when either cannot be resolved)."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def is_writable_folder(folder: Path) -> bool:
    """Writable, and not marked read-only (root may write anywhere; data folders say no)."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    writable_bits = mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    return stat.S_ISDIR(mode) and bool(writable_bits) and os.access(folder, os.W_OK)


def writable_folder(candidates: Iterable[Path | None]) -> Path:
    """The first existing, writable folder among ``candidates``, else the home folder."""
    for folder in candidates:
        if folder and is_writable_folder(folder):
            return folder
    return Path.home()


def output_beside(
    source: Path,
    suffix: str,
    ext: str,
    project_dir: Path | None = None,
    fallback_dir: Path | None = None,
) -> Path:
    """``<source stem><suffix><ext>`` in the project folder, the source's folder or a fallback."""
    folder = writable_folder([project_dir, source.parent, fallback_dir])
    return unique_path(folder / f"{source.stem}{suffix}{ext}")
