"""A person's verdicts on the study user's corrections, region by region, and what a
study does with them (session 45, dev/corrections/reference_audit.py makes the sheets
they are judged on).

The study's user copies every correction from the scene's reference. Where the reference
lacks a building the image shows, the user draws that roof as background, which no
cartographer would, and the right half is scored against the same gaps. A verdict says,
for one error region of one model's map, which of the two is right:

* ``roof``: the map is right, the reference lacks a building the image shows;
* ``error``: the reference is right, the map is wrong there;
* ``unclear``: the image does not tell (mixed regions, roofs under trees, walls without
  a roof, a reference outline of an odd shape).

Verdicts hold for one model's map (``model_sha``, the first 16 hex digits of its file's
SHA-256) and are matched to the map's regions by half, class and bounding box. The
judged study (``study --verdicts FILE``) leaves the left half's ``roof`` regions undrawn
(its user draws the next errors instead) and scores the right half also without its
``roof`` regions (row fields ``*_judged``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .users import error_regions

#: What a verdict may say.
VERDICTS = ("roof", "error", "unclear")

Region = tuple[int, np.ndarray, int]  # size in pixels, mask on the whole image, class


def regions_of(
    pred: np.ndarray, ref: np.ndarray, k: int | None, side: str = "left"
) -> list[Region]:
    """The k largest error regions of one half (``side`` left, where the study's user
    draws, or right, where it scores), as the study's user finds them (users.error_regions,
    largest first): (size px, mask on the whole image, class); k None: every region."""
    half = ref.shape[1] // 2
    if side == "left":
        found = error_regions(pred, ref, half)
    elif side == "right":  # the right half is the left half of the mirrored image
        flipped = error_regions(pred[:, ::-1], ref[:, ::-1], ref.shape[1] - half)
        found = [(size, (mask[:, ::-1], cls)) for size, (mask, cls) in flipped]
    else:
        raise ValueError(f"side is left or right, not {side!r}")
    ranked = sorted(found, key=lambda r: -r[0])
    return [(size, mask, cls) for size, (mask, cls) in ranked[:k]]


def bbox_of(mask: np.ndarray) -> list[int]:
    """[x0, y0, x1, y1] of a region's pixels (x1, y1 exclusive)."""
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def model_sha(path: Path) -> str:
    """The first 16 hex digits of a model file's SHA-256: verdicts hold for one model's map."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def load_verdicts(path: Path) -> list[dict]:
    """The verdict rows of a file, each checked for the fields a match needs."""
    rows = json.loads(Path(path).read_text())
    for row in rows:
        missing = {"scene", "model_sha", "half", "class", "bbox", "verdict"} - set(row)
        if missing:
            raise ValueError(f"{path}: a verdict lacks {', '.join(sorted(missing))}: {row}")
        if row["verdict"] not in VERDICTS:
            raise ValueError(f"{path}: unknown verdict {row['verdict']!r} (use {VERDICTS})")
    return rows


def judged(
    verdicts: list[dict], scene: str, sha: str, pred: np.ndarray, ref: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray, int]:
    """For one scene's map (of the model ``sha``): the left half's regions judged ``roof``
    (masks, for the user to leave undrawn), the right half's ``roof`` regions as one mask
    (to leave out of the judged score), and how many verdicts matched a region.

    Raises ValueError when the file holds no verdict for this scene and model (a study
    must not silently run unjudged) or a verdict matches no region of the map (the map is
    not the one judged)."""
    mine = [v for v in verdicts if v["scene"] == scene and v["model_sha"] == sha]
    if not mine:
        raise ValueError(f"no verdicts for {scene} with the model {sha}: judge its map first")
    skip: list[np.ndarray] = []
    ignore = np.zeros(ref.shape, dtype=bool)
    matched = 0
    for side in ("left", "right"):
        wanted = {(v["class"], tuple(v["bbox"])): v["verdict"] for v in mine if v["half"] == side}
        if not wanted:
            continue
        for _, mask, cls in regions_of(pred, ref, None, side):
            verdict = wanted.get((cls, tuple(bbox_of(mask))))
            if verdict is None:
                continue
            matched += 1
            if verdict == "roof" and side == "left":
                skip.append(mask)
            elif verdict == "roof":
                ignore |= mask
    if matched < len(mine):
        raise ValueError(
            f"{len(mine) - matched} of {len(mine)} verdicts on {scene} match no region of "
            "this map: the map is not the one judged"
        )
    return skip, ignore, matched


def roof_areas(
    verdicts: list[dict], scene: str, maps: dict[str, np.ndarray], ref: np.ndarray
) -> np.ndarray:
    """The image's pixels judged ``roof`` on ``scene`` (both halves), from every judged map
    in ``maps`` (model_sha -> that model's building map): the buildings the reference
    lacks, as areas any other model's study can use (``study --verdict-areas``).

    Raises ValueError when no verdict of the scene has its map in ``maps``."""
    out = np.zeros(ref.shape, dtype=bool)
    used = 0
    for sha, pred in maps.items():
        mine = [v for v in verdicts if v["scene"] == scene and v["model_sha"] == sha]
        if not mine:
            continue
        skip, ignore, _ = judged(mine, scene, sha, pred, ref)
        for mask in skip:
            out |= mask
        out |= ignore
        used += 1
    if not used:
        given = ", ".join(maps) or "none"
        raise ValueError(
            f"no judged map of {scene} among the models given ({given}): judge its map first"
        )
    return out


def carved(regions: list, areas: np.ndarray, min_pixels: int) -> list:
    """The user's error regions (size, (mask, class)) with the judged roof ``areas`` taken
    out of every background one (a user does not paint a roof the image shows as
    background), regions left under ``min_pixels`` dropped, sizes recounted."""
    out = []
    for size, (mask, cls) in regions:
        if cls == 0:
            mask = mask & ~areas
            size = int(mask.sum())
            if size < min_pixels:
                continue
        out.append((size, (mask, cls)))
    return out
