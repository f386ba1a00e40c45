"""Running an engine job from an algorithm: feedback as the two callbacks,
MapRefinerError as QgsProcessingException, details in the log; a bug (any other
exception) as one line too, its traceback in the crash log the command line uses."""

from __future__ import annotations

from typing import Any, Callable

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from ...cli_crash import summary, write_crash_log
from ...engine.errors import MapRefinerError
from ...engine.progress import CancelFn, ProgressFn
from ..installer.deps import check_dependencies
from ..jobs.torch_library import load_torch_library


def call_engine(
    feedback: QgsProcessingFeedback,
    job: Callable[[ProgressFn, CancelFn], Any],
    needs_torch: bool = True,
) -> Any:
    """``job(progress, is_cancelled)`` with the engine's errors made Processing's.

    Vectorizing and scoring use GDAL and numpy only, so they run without torch.
    """
    try:
        if needs_torch:
            check_dependencies()
            load_torch_library()  # Processing runs algorithms in a task: off the GIL
        return job(lambda f: feedback.setProgress(100.0 * f), feedback.isCanceled)
    except MapRefinerError as exc:
        if exc.details:
            feedback.pushDebugInfo(exc.details)
        raise QgsProcessingException(exc.message) from exc
    except QgsProcessingException:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in a file
        raise QgsProcessingException(internal_error(exc)) from None


def internal_error(exc: BaseException) -> str:
    """The line Processing shows for a bug, after writing its traceback to a crash log."""
    try:
        where = f"the details are in {write_crash_log(exc, 'in QGIS Processing')}"
    except OSError as log_exc:
        where = f"no crash log could be written ({log_exc.strerror or log_exc})"
    return (
        f"Map Refiner hit an internal error ({summary(exc)}); {where}. "
        "Please report it with that file."
    )
