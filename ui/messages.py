"""The one place that shows errors to the user: one message-bar line, details in the log."""

from __future__ import annotations

import logging
import traceback

from qgis.core import Qgis
from qgis.gui import QgsMessageBar

from ..engine.errors import CancelledError, MapRefinerError

log = logging.getLogger(__name__)
TITLE = "Map Refiner"


def show_error(bar: QgsMessageBar, exc: BaseException) -> None:
    """Show ``exc`` as one line; the traceback and details go to the Map Refiner log."""
    if isinstance(exc, CancelledError):
        bar.pushMessage(TITLE, exc.message, level=Qgis.MessageLevel.Info, duration=5)
        return
    if isinstance(exc, MapRefinerError):
        text = exc.message
        details = exc.details
    else:
        text = (
            f"Unexpected error ({type(exc).__name__}: {exc}); "
            "see the Map Refiner tab of the log messages."
        )
        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.error("%s%s", text, f"\n{details}" if details else "")
    bar.pushMessage(TITLE, text, level=Qgis.MessageLevel.Critical, duration=0)


def show_success(bar: QgsMessageBar, text: str) -> None:
    log.info(text)
    bar.pushMessage(TITLE, text, level=Qgis.MessageLevel.Success, duration=8)


def show_info(bar: QgsMessageBar, text: str) -> None:
    """How to use what was just switched on; goes by itself."""
    bar.pushMessage(TITLE, text, level=Qgis.MessageLevel.Info, duration=6)


def show_warning(bar: QgsMessageBar, text: str) -> None:
    """A result the user must read (it did not do all they asked); stays until closed."""
    log.warning(text)
    bar.pushMessage(TITLE, text, level=Qgis.MessageLevel.Warning, duration=0)


def dismiss(bar: QgsMessageBar, containing: str) -> int:
    """Close the bar's messages whose text contains ``containing``; how many."""
    stale = [item for item in list(bar.items()) if containing in item.text()]
    for item in stale:
        bar.popWidget(item)
    return len(stale)
