"""Output-file safety: never overwrite inputs, write atomically, clean up on failure."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Union

from .errors import MapRefinerError

PathLike = Union[str, Path]


def check_output_path(out: PathLike, inputs: Iterable[PathLike] = (),
                      overwrite: bool = False) -> Path:
    """Refuse outputs that would clobber an input or an existing file."""
    out = Path(out)
    for inp in inputs:
        if inp and Path(inp).exists() and out.exists() and os.path.samefile(out, inp):
            raise MapRefinerError(
                f"The output {out} is one of the inputs; choose another output file.")
        if inp and Path(inp).resolve() == out.resolve():
            raise MapRefinerError(
                f"The output {out} is one of the inputs; choose another output file.")
    if out.is_dir():
        raise MapRefinerError(f"{out} is a folder; give the output a file name.")
    if out.exists() and not overwrite:
        raise MapRefinerError(
            f"{out} already exists; choose another name or allow overwriting it.")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise MapRefinerError(f"The output folder {parent} does not exist; create it first.")
    if not os.access(parent, os.W_OK):
        raise MapRefinerError(f"The output folder {parent} is not writable; choose another one.")
    return out


def temp_sibling(path: Path) -> Path:
    """A hidden temporary name beside ``path`` (same filesystem, so rename is atomic)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
