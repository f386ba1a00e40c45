"""One QgsTask per job: the engine runs in a worker thread, results come back in
``finished()`` on the main thread, where layers may be added."""

from __future__ import annotations

import logging
from typing import Any, Callable

from qgis.core import QgsTask

from ...engine.errors import CancelledError
from ...engine.progress import CancelFn, ProgressFn

log = logging.getLogger(__name__)
Job = Callable[[ProgressFn, CancelFn], Any]


class EngineTask(QgsTask):
    """Runs ``job(progress, is_cancelled)``; keeps its result or its exception.

    ``on_success(task, result)`` or ``on_error(task, exception)`` is called once,
    on the main thread.
    """

    def __init__(
        self,
        description: str,
        job: Job,
        on_success: Callable[[EngineTask, Any], None],
        on_error: Callable[[EngineTask, BaseException], None],
    ) -> None:
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.job = job
        self.on_success = on_success
        self.on_error = on_error
        self.result: Any = None
        self.exception: BaseException | None = None

    def report(self, fraction: float) -> None:
        self.setProgress(100.0 * min(max(fraction, 0.0), 1.0))

    def run(self) -> bool:
        try:
            self.result = self.job(self.report, self.isCanceled)
        except BaseException as exc:  # noqa: B036 - kept and reported in finished()
            self.exception = exc
            return False
        return True

    def finished(self, ok: bool) -> None:
        try:
            if not ok:
                self.on_error(self, self.exception or CancelledError())
                return
            try:
                self.on_success(self, self.result)
            except Exception as exc:  # noqa: BLE001 - a failure adding layers is shown once too
                self.on_error(self, exc)
        finally:
            # The traceback refers back to this task: break the cycle while Qt still owns it.
            self.exception = None
            self.result = None
