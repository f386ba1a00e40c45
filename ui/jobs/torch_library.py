"""Loading torch's native library in a task without stopping QGIS's main thread.

``import torch`` maps libtorch_cpu (hundreds of MB, with relocations and static
initialisers) inside one ``dlopen`` while CPython holds the GIL, so every Python slot,
every Python-made widget and every event the main loop hands to Python waits for the
whole load. The C library's ``dlopen`` called through ``ctypes.CDLL`` runs with the
GIL released; once the library is mapped, the ``import torch`` that follows finds it
there and keeps the GIL only for short stretches. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

_NAMES = ("libtorch_cpu.so", "libtorch_cpu.dylib")
_lock = threading.Lock()
_loaded: list[Path] = []


def torch_library() -> Path | None:
    """libtorch_cpu of the torch that ``import torch`` would import, if there is one."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "lib"
    return next((folder / n for n in _NAMES if (folder / n).is_file()), None)


def load_torch_library() -> None:
    """Map libtorch_cpu with the GIL released, before torch is imported; call it in a
    worker thread. Does nothing on Windows (torch loads its DLLs through ctypes itself),
    once torch is imported, or when it fails: the import then loads the library as usual.
    """
    if os.name == "nt" or "torch" in sys.modules:
        return
    with _lock:  # two tasks starting together load it once
        if _loaded:
            return
        path = torch_library()
        if path is None:
            return
        try:
            dlopen = ctypes.CDLL(None).dlopen  # a CDLL function: called without the GIL
        except (AttributeError, OSError):
            return
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        # the flags the import itself uses; the handle is kept: torch is never unloaded
        if dlopen(os.fsencode(path), sys.getdlopenflags()):
            _loaded.append(path)
        else:
            log.debug("dlopen(%s) failed; import torch will load it", path)
