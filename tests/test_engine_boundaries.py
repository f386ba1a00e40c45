"""engine/ and training/ stay free of QGIS and Qt; engine/ never reaches into training/ or ui/."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]
GUI_ROOTS = ("qgis", "PyQt4", "PyQt5", "PyQt6", "PySide", "PySide2", "PySide6", "sip")


def imported_names(source: str, package_parts: list[str]) -> list[str]:
    """Every module an ``import``/``from`` statement (at any depth) names, made absolute."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
                # ``from .. import training`` names the subpackage in the alias.
                names += [f"{mod}.{a.name}" for a in node.names] if not node.module else [mod]
            else:
                names.append(node.module or "")
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.append(node.args[0].value)
    return names


def forbidden(name: str, also: tuple) -> bool:
    root = name.split(".")[0]
    return root in GUI_ROOTS or any(name == a or name.startswith(a + ".") for a in also)


def offenders(folder: str, also: tuple) -> dict:
    found = {}
    files = sorted((PACKAGE / folder).rglob("*.py"))
    assert files, f"no sources under {folder}/"
    for path in files:
        rel = path.relative_to(PACKAGE)
        parts = ["map_refiner", *rel.with_suffix("").parts]
        bad = [
            n for n in imported_names(path.read_text(encoding="utf-8"), parts) if forbidden(n, also)
        ]
        if bad:
            found[str(rel)] = bad
    return found


def test_engine_sources_import_no_qgis_qt_training_or_ui() -> None:
    assert offenders("engine", ("map_refiner.training", "map_refiner.ui")) == {}


def test_training_sources_import_no_qgis_qt_or_ui() -> None:
    assert offenders("training", ("map_refiner.ui",)) == {}


@pytest.mark.parametrize(
    "source,bad",
    [
        ("import qgis.core", True),
        ("from qgis.PyQt.QtCore import QObject", True),
        ("from PyQt5 import QtCore", True),
        ("def f():\n    from PySide6.QtCore import Qt", True),
        ("from ..training import coarse", True),
        ("from .. import ui", True),
        ("from ..ui.dialog import RefineDialog", True),
        ("import importlib\nimportlib.import_module('qgis.core')", True),
        ("from map_refiner.training.rnn import train_rnn", True),
        ("from . import models\nfrom .models import CoarseFCN\nimport torch", False),
        ("from ..engine import models", False),
    ],
)
def test_the_scanner_catches_each_form(source: str, bad: bool) -> None:
    names = imported_names(source, ["map_refiner", "engine", "some_module"])
    assert any(forbidden(n, ("map_refiner.training", "map_refiner.ui")) for n in names) == bad


CHECK = """
import importlib, pkgutil, sys
import map_refiner.{pkg} as pkg
mods = [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.')]
assert len(mods) > {minimum}, mods
for m in mods:
    importlib.import_module(m)
gui = sorted(n for n in sys.modules if n.split('.')[0] in {roots!r})
up = sorted(n for n in sys.modules if n.split('.')[:2] in {forbidden_pkgs!r})
print(len(mods), 'modules')
assert not gui, gui
assert not up, up
"""


@pytest.mark.parametrize(
    "pkg,minimum,forbidden_pkgs",
    [
        ("engine", 10, [["map_refiner", "training"], ["map_refiner", "ui"]]),
        ("training", 3, [["map_refiner", "ui"]]),
    ],
)
def test_importing_every_module_loads_no_gui(
    tmp_path: Path, pkg: str, minimum: int, forbidden_pkgs
) -> None:
    code = CHECK.format(pkg=pkg, minimum=minimum, roots=GUI_ROOTS, forbidden_pkgs=forbidden_pkgs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "modules" in done.stdout


@pytest.mark.parametrize(
    "module",
    [
        "map_refiner.dev.benchmarks.cuda_check",
        "map_refiner.engine.networks.inference",
        "map_refiner.engine.scoring.scores",
        "map_refiner.training.coarse_fit",
        "map_refiner.training.rnn_fit",
    ],
)
def test_gpu_box_modules_need_no_gdal(tmp_path: Path, module: str) -> None:
    """The lent GPU machine has torch but no GDAL (docs/STATUS.md): what runs
    there must import without osgeo."""
    code = (
        "import sys\nsys.modules['osgeo'] = None  # any 'import osgeo...' now fails\n"
        f"import {module}\nprint('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-3000:]
