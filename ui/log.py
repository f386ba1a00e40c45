"""Route the package's ``logging`` records to a "Map Refiner" tab of the QGIS log."""

from __future__ import annotations

import logging

from qgis.core import Qgis, QgsMessageLog

LOG_TAG = "Map Refiner"
PACKAGE_LOGGER = "map_refiner"


class MessageLogHandler(logging.Handler):
    """QgsMessageLog is thread-safe, so task threads may log through this too."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            level = Qgis.MessageLevel.Critical
        elif record.levelno >= logging.WARNING:
            level = Qgis.MessageLevel.Warning
        else:
            level = Qgis.MessageLevel.Info
        QgsMessageLog.logMessage(self.format(record), LOG_TAG, level, notifyUser=False)


def attach_log_handler() -> MessageLogHandler:
    handler = MessageLogHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger(PACKAGE_LOGGER)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return handler


def detach_log_handler(handler: MessageLogHandler) -> None:
    logging.getLogger(PACKAGE_LOGGER).removeHandler(handler)
