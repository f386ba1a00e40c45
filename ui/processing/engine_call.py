"""Running an engine job from an algorithm: feedback as the two callbacks,
MapRefinerError as QgsProcessingException, details in the log."""

from __future__ import annotations

from typing import Any, Callable

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from ...engine.errors import MapRefinerError
from ...engine.progress import CancelFn, ProgressFn
from ..installer.deps import check_dependencies


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
        return job(lambda f: feedback.setProgress(100.0 * f), feedback.isCanceled)
    except MapRefinerError as exc:
        if exc.details:
            feedback.pushDebugInfo(exc.details)
        raise QgsProcessingException(exc.message) from exc
