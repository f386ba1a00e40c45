"""Loading torch's native library in a task without stopping QGIS's main thread.

``import torch`` maps libtorch_cpu (hundreds of MB, with relocations and static
initialisers) inside one ``dlopen`` while CPython holds the GIL, so every Python slot,
every Python-made widget and every event the main loop hands to Python waits for the
whole load. The C library's ``dlopen`` called through ``ctypes.CDLL`` runs with the
GIL released; once the library is mapped, the ``import torch`` that follows finds it
there and keeps the GIL only for short stretches, but for one more: the full garbage
collections the import's ~160,000 new objects set off, each a single C call under the
GIL that grows with every object the process holds (QGIS's own included: 70-210 ms).
So the import runs with collection paused, and torch's objects, which live as long as
the process, are then frozen out of every later collection (``gc.freeze``), which also
spares QGIS a ~120 ms full pass over them each time one runs after. The freeze takes
every object alive at that moment, QGIS's and the plugin's too (mostly modules, classes
and long-lived wrappers): a reference cycle among them that turns to garbage later is
not collected, the price of never scanning them again. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import logging
import os
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# libtorch_python (30 MB, mapped by the import of torch._C) needs libtorch_cpu first
_NAMES = (
    ("libtorch_cpu.so", "libtorch_cpu.dylib"),
    ("libtorch_python.so", "libtorch_python.dylib"),
)
_lock = threading.Lock()
_loaded: list[Path] = []


def torch_libraries() -> list[Path]:
    """libtorch_cpu and libtorch_python of the torch that ``import torch`` would import,
    in the order they load; none when there is no such torch."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return []
    if spec is None or spec.origin is None:
        return []
    folder = Path(spec.origin).parent / "lib"
    found = [next((folder / n for n in names if (folder / n).is_file()), None) for names in _NAMES]
    return [path for path in found if path is not None]


def load_torch_library() -> None:
    """Import torch in a worker thread while holding the GIL as little as it can: its
    native libraries mapped with the GIL released, then ``import torch`` with garbage
    collection paused and torch's objects frozen after. Does nothing once torch is
    imported; on Windows (torch loads its DLLs through ctypes itself) or when a library
    does not map, the import loads it as usual. An import that fails is left to the
    caller's own import, which raises as it always did.
    """
    if "torch" in sys.modules:
        return
    with _lock:  # two tasks starting together load it once
        if "torch" in sys.modules:
            return
        if os.name != "nt":
            _map_libraries()
        collecting = gc.isenabled()
        gc.disable()
        try:
            import torch  # noqa: F401
        except Exception:  # noqa: BLE001 - the caller's import raises it with its message
            log.debug("import torch failed in load_torch_library", exc_info=True)
            return
        finally:
            if collecting:
                gc.enable()
        gc.freeze()


def _map_libraries() -> None:
    if _loaded:
        return
    try:
        dlopen = ctypes.CDLL(None).dlopen  # a CDLL function: called without the GIL
    except (AttributeError, OSError):
        return
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    for path in torch_libraries():
        # the flags the import itself uses; the handle is kept: torch is never unloaded
        if not dlopen(os.fsencode(path), sys.getdlopenflags()):
            log.debug("dlopen(%s) failed; import torch will load it", path)
            return
        _loaded.append(path)
