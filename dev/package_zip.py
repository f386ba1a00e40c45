"""Build ``dist/map_refiner.zip`` for QGIS's "Plugins ▸ Install from ZIP".

The archive holds one folder, ``map_refiner/``, with what the plugin runs:
the Python packages, resources (icons, bundled model), metadata.txt and
requirements.txt (read at run time for the install hint). Tests, docs, dev/
(research and tools), virtual environments, caches and build files stay out. Entries are sorted and
time-stamped alike, so the same tree gives the same bytes.

    python -m map_refiner.dev.package_zip --out dist/map_refiner.zip
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ..engine.modelfile.header import BUNDLED_MODELS

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = "map_refiner"
TOP_LEVEL = (
    "*.py",
    "engine",
    "training",
    "ui",
    "resources",
    "metadata.txt",
    "requirements.txt",
    "README.md",
    "LICENSE*",
)
SKIP = ("__pycache__", "*.pyc", "*.pyo", ".*", "*.tmp", "*.partial*", "*.aux.xml", "*.egg-info")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def _skipped(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in SKIP)


def plugin_files(root: Path = ROOT) -> Iterator[Path]:
    """Files of the plugin, relative to ``root``, sorted."""
    for entry in sorted(root.iterdir()):
        if _skipped(entry.name) or not any(fnmatch.fnmatch(entry.name, p) for p in TOP_LEVEL):
            continue
        if entry.is_file():
            yield entry.relative_to(root)
            continue
        for path in sorted(entry.rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not any(_skipped(part) for part in rel.parts):
                yield rel


def build_zip(out: Path, root: Path = ROOT) -> list[str]:
    if not (root / "metadata.txt").exists():
        raise SystemExit(f"{root} has no metadata.txt; run this from the plugin's repository.")
    out.parent.mkdir(parents=True, exist_ok=True)
    names = []
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in plugin_files(root):
            name = f"{PLUGIN_DIR}/{rel.as_posix()}"
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, (root / rel).read_bytes())
            names.append(name)
    tmp.replace(out)
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "map_refiner.zip")
    args = parser.parse_args(argv)
    names = build_zip(args.out)
    for model, path in BUNDLED_MODELS.items():
        if not any(n.endswith(f"resources/models/{path.name}") for n in names):
            print(
                f"warning: no bundled {model} model (resources/models/{path.name}) in the zip",
                file=sys.stderr,
            )
    print(f"wrote {args.out} ({len(names)} files, {args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
