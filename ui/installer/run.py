"""Installing torch and safetensors into the plugin-private folder (no Qt here).

Steps, all in a staging folder beside the target, so that a failure or a cancel
leaves the profile as it was:

1. a virtual environment made by QGIS's own Python with ``--system-site-packages``
   and no pip: pip run in it sees what QGIS's Python already has and installs only
   what is missing or too old, and never uninstalls or upgrades anything outside it;
2. pip (QGIS's Python's, or a pip wheel) installs the versions pinned in
   requirements.txt, the torch build's local label pinned too, with a constraint
   that holds numpy (and GDAL) at the versions QGIS's Python has;
3. its site-packages becomes ``staging/site-packages``; the rest of the venv goes;
4. a separate process of QGIS's Python with only that folder added imports torch
   and runs a tiny convolution, and must find numpy outside it;
5. the staging folder replaces the old install (renamed away, then deleted).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ...engine.errors import MapRefinerError
from ...engine.progress import CancelFn, ProgressFn
from .builds import BuildChoice
from .check import VERIFY_SCRIPT, check_verify_output, classify_pip_failure
from .deps import REQUIREMENTS, pinned_requirements
from .pip import LogFn, pip_command, quiet, reachable, run_logged, venv_python
from .site import MANIFEST, SITE, protected_in

PACKAGES = ("torch", "safetensors")
PYPI = "https://pypi.org/simple/"
VERSIONS_SCRIPT = (
    "import json\nout = {}\nfor name in ('numpy', 'osgeo'):\n    try:\n"
    "        out[name] = __import__(name).__version__\n    except Exception:\n"
    "        pass\nprint(json.dumps(out))"
)


@dataclass
class InstallPlan:
    """What to install where, with which Python and build."""

    python: str
    folder: Path
    build: BuildChoice
    requirements: Path = REQUIREMENTS
    env: dict[str, str] = field(default_factory=dict)  # added to the environment (tests, proxies)

    def specs(self) -> list[str]:
        pins = pinned_requirements(self.requirements)
        missing = [name for name in PACKAGES if name not in pins]
        if missing:
            raise MapRefinerError(
                f"{self.requirements} pins no version of {', '.join(missing)}; "
                "the plugin's files are incomplete: reinstall the plugin."
            )
        return [self.build.torch_spec(pins["torch"]), pins["safetensors"]]

    def environment(self) -> dict[str, str]:
        env = dict(
            os.environ,
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_NO_INPUT="1",
            PYTHONIOENCODING="utf-8",
        )
        env.update(self.env)
        return env


@dataclass
class InstallResult:
    folder: Path
    versions: dict[str, str]
    build: str
    seconds: float
    report: dict


def install(
    plan: InstallPlan, progress: ProgressFn, is_cancelled: CancelFn, log: LogFn
) -> InstallResult:
    """Install into ``plan.folder`` (replacing what is there) or change nothing."""
    t0 = time.monotonic()
    specs = plan.specs()
    env = plan.environment()
    staging = plan.folder.with_name(f".{plan.folder.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        log(f"Installing {' '.join(specs)} ({plan.build.label} build: {plan.build.reason})")
        log(f"QGIS's Python: {plan.python}; target: {plan.folder}")
        site = _pip_install(plan, specs, staging, env, progress, is_cancelled, log)
        progress(0.85)
        report = verify(plan.python, site, env, is_cancelled, log)
        progress(0.95)
        manifest = {
            "packages": {n: report[n] for n in PACKAGES},
            "build": plan.build.key,
            "reason": plan.build.reason,
            "python": plan.python,
            "python_version": report.get("python", ""),
            "specs": specs,
            "installed": time.strftime("%Y-%m-%d %H:%M:%S"),
            "verify": report,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _swap(staging, plan.folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(1.0)
    log(f"Done: torch {report['torch']} and safetensors {report['safetensors']} in {plan.folder}")
    return InstallResult(
        plan.folder, {n: report[n] for n in PACKAGES}, plan.build.key, time.monotonic() - t0, report
    )


def _pip_install(
    plan: InstallPlan,
    specs: list[str],
    staging: Path,
    env: dict[str, str],
    progress: ProgressFn,
    is_cancelled: CancelFn,
    log: LogFn,
) -> Path:
    venv = staging / "venv"
    code, lines = run_logged(
        [plan.python, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)],
        log,
        is_cancelled,
        env,
    )
    if code != 0:
        raise MapRefinerError(
            f"QGIS's Python could not make a virtual environment (exit {code}); "
            "see the log. Nothing was changed.",
            details="\n".join(lines),
        )
    vpy = str(venv_python(venv))
    pins = _held_versions(plan.python, env)
    constraints = staging / "constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    log("Holding QGIS's " + (", ".join(f"{n} {v}" for n, v in pins.items()) or "packages"))
    pip = pip_command(vpy, env)
    argv = pip + ["install", "--progress-bar", "off", "--constraint", str(constraints)]
    if plan.build.index_url and reachable(plan.build.index_url, env):
        argv += ["--extra-index-url", plan.build.index_url]
    elif plan.build.index_url:
        log(
            f"{plan.build.index_url} does not answer: using pip's own indexes and find-links "
            f"only (the {plan.build.key} build is still pinned)"
        )
    progress(0.05)
    seen = [0]

    def on_line(line: str) -> None:
        log(line)
        if line.lstrip().startswith(("Collecting", "Processing", "Downloading", "Requirement")):
            seen[0] += 1
            progress(min(0.6, 0.05 + 0.04 * seen[0]))
        elif line.startswith("Installing collected packages"):
            progress(0.65)

    code, lines = run_logged(
        argv + specs, on_line, is_cancelled, env, "Installation cancelled; nothing was changed."
    )
    if code != 0:
        indexes = [plan.build.index_url or "", env.get("PIP_INDEX_URL") or PYPI]
        online = any(reachable(url, env) for url in indexes if url)
        raise classify_pip_failure(code, lines, specs, plan.build, online)
    code, out = quiet([vpy, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], env)
    built = Path(out.strip().splitlines()[-1]) if code == 0 and out.strip() else None
    if built is None or not built.is_dir():
        raise MapRefinerError(
            "pip finished but its site-packages folder was not found; see the log."
        )
    bad = protected_in(built)
    if bad:
        raise MapRefinerError(
            f"pip wanted to install {', '.join(bad)}, which QGIS's own Python "
            "provides; refused, nothing was changed.",
            details="\n".join(lines),
        )
    site = staging / SITE
    shutil.move(str(built), str(site))
    shutil.rmtree(venv, ignore_errors=True)
    return site


def _held_versions(python: str, env: dict[str, str]) -> dict[str, str]:
    """numpy and GDAL as QGIS's Python has them, for pip's constraint file."""
    code, out = quiet([python, "-c", VERSIONS_SCRIPT], env)
    try:
        found = json.loads(out.strip().splitlines()[-1]) if code == 0 else {}
    except (ValueError, IndexError):
        found = {}
    names = {"numpy": "numpy", "osgeo": "GDAL"}
    return {names[k]: v for k, v in found.items() if k in names}


def verify(
    python: str, site: Path, env: dict[str, str], is_cancelled: CancelFn, log: LogFn
) -> dict:
    """Import torch from ``site`` in a new process of QGIS's Python and run a convolution."""
    log("Checking: import torch and run a small convolution in a separate process…")
    code, lines = run_logged([python, "-c", VERIFY_SCRIPT, str(site)], log, is_cancelled, env)
    return check_verify_output(code, lines, site)


def _swap(staging: Path, folder: Path) -> None:
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    try:
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)
    except OSError as exc:
        if old.exists() and not folder.exists():
            old.rename(folder)
        raise MapRefinerError(
            f"Could not replace {folder} ({exc}); torch may be in use: restart QGIS and try again "
            "before running Map Refiner. The previous install is unchanged."
        ) from exc
    shutil.rmtree(old, ignore_errors=True)


def uninstall(folder: Path) -> bool:
    """Remove the private install; False when there was none."""
    if not folder.exists():
        return False
    trash = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(trash, ignore_errors=True)
    try:
        folder.rename(trash)
    except OSError as exc:
        raise MapRefinerError(
            f"Could not remove {folder} ({exc}); restart QGIS and uninstall "
            "before using Map Refiner."
        ) from exc
    shutil.rmtree(trash, ignore_errors=True)
    return True
