"""The plugin's code runs on QGIS 3.22 (Qt5) and stays ready for QGIS 4 (Qt6).

Scans the source, no QGIS needed, for what breaks under Qt6: Qt imported
directly (PyQt5, PyQt6, sip) instead of through ``qgis.PyQt``; ``exec_()``;
enum members reached through their class alone (``Qt.AlignLeft``,
``Qgis.Critical``, ``QgsProcessingParameterNumber.Integer``) instead of through
their enum (``Qt.AlignmentFlag.AlignLeft``, ``Qgis.MessageLevel.Critical``,
``QgsProcessingParameterNumber.Type.Integer``), which PyQt5 and QGIS 3.22 accept
too; and ``QVariant.Type``, which PyQt6 has not. Field types stay
``QVariant.Int`` and the like: QGIS 3.22's ``QgsField`` takes nothing else, and
QGIS 4 maps them onto ``QMetaType.Type``.
"""

from __future__ import annotations

import ast
import configparser
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {"out", "dist", "build", "__pycache__"}
DIRECT_QT = {"PyQt5", "PyQt6", "PySide2", "PySide6", "sip"}
#: A Qt or QGIS class (``Qt``, ``QDialogButtonBox``, ``Qgis``, ``QgsTask``...).
QT_CLASS = re.compile(r"^Q[A-Za-z0-9]*$")
#: An enum member's name: capitalised, not an ALL_CAPS constant (``Qgis.QGIS_VERSION``).
MEMBER = re.compile(r"^[A-Z](?=[A-Za-z0-9]*[a-z])[A-Za-z0-9]*$")


def python_files() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts[:-1]
        if not any(p in SKIPPED_DIRS or p.startswith(".") for p in parts):
            yield path


def qt6_problems(source: str) -> list[str]:
    """``line: what`` for each construct in ``source`` that breaks under Qt6."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots = [node.module.split(".")[0]]
        else:
            roots = []
        found += [f"{node.lineno}: imports {r} (use qgis.PyQt)" for r in roots if r in DIRECT_QT]
        if not isinstance(node, ast.Attribute):
            continue
        if node.attr == "exec_":
            found.append(f"{node.lineno}: exec_() (use exec())")
        if not isinstance(node.value, ast.Name) or not QT_CLASS.match(node.value.id):
            continue
        name = f"{node.value.id}.{node.attr}"
        parent = parents.get(node)
        if name == "QVariant.Type":
            found.append(f"{node.lineno}: QVariant.Type (PyQt6 has none; QVariant.Int etc.)")
        elif node.value.id == "QVariant" or not MEMBER.match(node.attr):
            continue
        elif isinstance(parent, ast.Attribute) and parent.value is node:
            continue  # scoped: Qt.AlignmentFlag.AlignLeft
        elif isinstance(parent, ast.Call) and parent.func is node:
            continue  # a nested class built: QgsVectorFileWriter.SaveVectorOptions()
        else:
            found.append(f"{node.lineno}: {name} (scope it by its enum)")
    return found


@pytest.mark.parametrize(
    "line",
    [
        "from PyQt5.QtCore import Qt",
        "import PyQt5.QtWidgets",
        "from PyQt6 import QtCore",
        "import sip",
        "dialog.exec_()",
        "label.setAlignment(Qt.AlignLeft)",
        "x = Qt.AlignLeft | Qt.AlignTop",
        "bar.pushMessage('t', 'm', level=Qgis.Critical)",
        "buttons = QDialogButtonBox(QDialogButtonBox.Ok)",
        "kind = QgsProcessingParameterNumber.Integer",
        "types = [QgsProcessing.TypeVectorPolygon]",
        "task = QgsTask('t', QgsTask.CanCancel)",
        "field = QgsField('n', QVariant.Type.Int)",
    ],
)
def test_the_scan_catches_what_breaks_under_qt6(line: str) -> None:
    assert qt6_problems(line), line


@pytest.mark.parametrize(
    "line",
    [
        "from qgis.PyQt.QtCore import Qt",
        "from qgis.PyQt import sip",
        "dialog.exec()",
        "label.setAlignment(Qt.AlignmentFlag.AlignLeft)",
        "bar.pushMessage('t', 'm', level=Qgis.MessageLevel.Critical)",
        "kind = QgsProcessingParameterNumber.Type.Integer",
        "version = Qgis.QGIS_VERSION_INT",
        "options = QgsVectorFileWriter.SaveVectorOptions()",
        "field = QgsField('n', QVariant.Int)",
        "text = 'Qt.AlignLeft in a string is not code'",
    ],
)
def test_the_scan_passes_what_runs_on_both(line: str) -> None:
    assert qt6_problems(line) == [], line


def test_no_source_file_breaks_under_qt6() -> None:
    problems = [
        f"{path.relative_to(ROOT)}:{problem}"
        for path in python_files()
        for problem in qt6_problems(path.read_text(encoding="utf-8"))
    ]
    assert problems == []


def test_scan_covers_the_plugin() -> None:
    scanned = {p.relative_to(ROOT).as_posix() for p in python_files()}
    assert {"plugin.py", "ui/dialog/dialog.py", "ui/processing/refine_algorithm.py"} <= scanned


def test_metadata_lets_qgis_4_load_the_plugin() -> None:
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    general = meta["general"]
    assert general.get("supportsQt6", "").lower() in ("true", "yes")
    assert general["qgisMinimumVersion"] == "3.22"
    assert float(general["qgisMaximumVersion"]) >= 4.0
