"""Which code produced a reported figure: the commit, and whether the files
that matter had uncommitted edits (used by ``make experiment`` and ``make bench``)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_state(
    repo: Path = REPO, paths: Sequence[str] = (), untracked: bool = True
) -> dict[str, str]:
    """``{"commit": short hash or "unknown", "dirty": "yes"/"no"}``; ``dirty`` looks
    at the files under ``paths`` (the whole tree when empty), new untracked ones
    included unless ``untracked`` is False."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=20
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    dirty = git(
        "status", "--porcelain", *([] if untracked else ["--untracked-files=no"]), "--", *paths
    )
    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": "yes" if dirty else "no",
    }
