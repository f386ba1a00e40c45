"""The floor plan holds: nothing shipped imports dev/, the zip carries no dev/ or
tests/, and no folder of shipped code outgrows about a dozen modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from map_refiner.dev.package_zip import plugin_files

PACKAGE = Path(__file__).resolve().parents[1]
MAX_MODULES = 12


def imported_modules(source: str, package: list[str]) -> list[str]:
    """Every module an import statement (at any depth) or ``import_module`` call names,
    relative imports resolved against ``package`` (the importing module's package)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] if node.level else [])
            mod = ".".join(p for p in (base, node.module or "") if p)
            names.append(mod)
            names += [f"{mod}.{a.name}" for a in node.names]  # ``from .. import dev``
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


def package_of(rel: Path) -> list[str]:
    parts = ["map_refiner", *rel.with_suffix("").parts]
    return parts if rel.name == "__init__.py" else parts[:-1]


def imports_dev(name: str) -> bool:
    return name == "map_refiner.dev" or name.startswith("map_refiner.dev.")


def shipped_sources() -> list[Path]:
    return [p for p in plugin_files(PACKAGE) if p.suffix == ".py"]


def test_the_zip_carries_no_dev_and_no_tests() -> None:
    files = [p.as_posix() for p in plugin_files(PACKAGE)]
    assert files
    assert not [f for f in files if f.startswith(("dev/", "tests/"))]


def test_the_scan_covers_the_shipped_code() -> None:
    names = {p.as_posix() for p in shipped_sources()}
    for needed in (
        "__init__.py",
        "plugin.py",
        "cli.py",
        "cli_commands.py",
        "cli_demo.py",
        "engine/refine/pipeline.py",
        "training/rnn.py",
        "ui/controller.py",
        "ui/processing/provider.py",
    ):
        assert needed in names
    for folder in ("engine", "training", "ui"):
        on_disk = {p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / folder).rglob("*.py")}
        assert on_disk <= names, sorted(on_disk - names)


def test_nothing_shipped_imports_dev() -> None:
    offenders = {}
    for rel in shipped_sources():
        source = (PACKAGE / rel).read_text(encoding="utf-8")
        bad = [n for n in imported_modules(source, package_of(rel)) if imports_dev(n)]
        if bad:
            offenders[rel.as_posix()] = bad
    assert offenders == {}


@pytest.mark.parametrize(
    "source,package,bad",
    [
        ("from ..dev.package_zip import ROOT", ["map_refiner", "ui"], True),
        ("from .. import dev", ["map_refiner", "engine"], True),
        ("def f():\n    from ...dev import provenance", ["map_refiner", "ui", "jobs"], True),
        ("from map_refiner.dev.benchmarks import bench", ["map_refiner"], True),
        (
            "import importlib\nimportlib.import_module('map_refiner.dev.webtiles')",
            ["map_refiner"],
            True,
        ),
        ("from .device import resolve_device", ["map_refiner", "engine"], False),
        ("from ..device import device_label", ["map_refiner", "engine", "refine"], False),
        ("from .dev_notes import x", ["map_refiner"], False),
    ],
)
def test_the_scanner_resolves_each_form(source: str, package: list[str], bad: bool) -> None:
    assert any(imports_dev(n) for n in imported_modules(source, package)) == bad


def test_shipped_folders_hold_at_most_a_dozen_modules() -> None:
    crowded = {}
    for folder in ("engine", "training", "ui"):
        for d in [PACKAGE / folder, *(p for p in (PACKAGE / folder).rglob("*") if p.is_dir())]:
            modules = [p for p in d.glob("*.py") if p.name != "__init__.py"]
            if len(modules) > MAX_MODULES:
                crowded[str(d.relative_to(PACKAGE))] = len(modules)
    assert crowded == {}
