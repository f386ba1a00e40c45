"""Errors reach the user as one message-bar line; details go to the Map Refiner log."""

from __future__ import annotations

from functools import partial

from qgis.core import Qgis, QgsApplication
from qgis.gui import QgsMessageBar

from map_refiner.engine.errors import CancelledError, MapRefinerError
from map_refiner.ui.messages import show_error


class RecordingBar(QgsMessageBar):
    def __init__(self) -> None:
        super().__init__()
        self.pushed = []

    def pushMessage(self, title, text, level=Qgis.MessageLevel.Info, duration=-1):  # noqa: N802, ANN001, ANN201
        self.pushed.append((title, text, level))


def _log_lines(func) -> list:  # noqa: ANN001
    seen = []

    def collect(message: str, tag: str, _level) -> None:  # noqa: ANN001
        seen.append((tag, message))

    QgsApplication.messageLog().messageReceived.connect(collect)
    try:
        func()
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(collect)
    return seen


def test_user_error_is_its_message_with_details_in_the_log(plugin) -> None:  # noqa: ANN001
    bar = RecordingBar()
    exc = MapRefinerError("The model needs 3 bands; 1 was chosen.", details="band list [1]")
    seen = _log_lines(lambda: show_error(bar, exc))
    assert bar.pushed == [
        ("Map Refiner", "The model needs 3 bands; 1 was chosen.", Qgis.MessageLevel.Critical)
    ]
    assert any(tag == "Map Refiner" and "band list [1]" in msg for tag, msg in seen)


def test_unexpected_error_points_to_the_log_with_its_traceback(plugin) -> None:  # noqa: ANN001
    bar = RecordingBar()
    try:
        {}["missing"]
    except KeyError as exc:
        seen = _log_lines(partial(show_error, bar, exc))
    assert len(bar.pushed) == 1
    assert "Unexpected error (KeyError" in bar.pushed[0][1] and "log" in bar.pushed[0][1]
    assert any("Traceback" in msg and "KeyError" in msg for _tag, msg in seen)


def test_cancel_is_information_not_an_error() -> None:
    bar = RecordingBar()
    show_error(bar, CancelledError())
    assert bar.pushed[0][2] == Qgis.MessageLevel.Info
