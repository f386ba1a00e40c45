"""The words users choose from, defined once: devices, precisions, label modes and
the value-map syntax. The command line, the dialog and Processing import them
from here; no torch, so the QGIS side can too before the engine is installed.

Where an older spelling may sit in saved settings or scripts it is still read
(``full`` for the ``tile`` label mode, ``0=0,255=1`` value maps); only the one
spelling here is shown.
"""

from __future__ import annotations

import re

from .errors import MapRefinerError

#: ``auto`` takes a CUDA GPU when torch can use one, else the CPU.
DEVICES = ("auto", "cpu", "cuda")
#: ``auto``: bf16 mixed precision on a CUDA GPU that supports it, fp32 elsewhere.
PRECISIONS = ("auto", "fp32", "bf16")
#: How a cluster refine hands its result over: one GeoTIFF, or a VRT over its parts.
CLUSTER_FORMATS = ("gtiff", "vrt")
#: Web-map tile sizes in pixels: standard tiles, and high-DPI (``@2x``) ones covering the
#: same ground with twice the pixels.
XYZ_TILE_SIZES = (256, 512)

#: How vector labels count: ``sparse``, only the pixels under features (corrections);
#: ``tile``, a fully labelled tile whose unlabelled pixels are background.
LABEL_MODES = ("sparse", "tile")
LABEL_MODE_TEXT = {
    "sparse": "Sparse corrections (only pixels under polygons count)",
    "tile": "Fully labelled tile (pixels outside polygons are background)",
}
_LABEL_MODE_ALIASES = {"full": "tile"}  # the dialog's and Processing's earlier name

#: What a fine-tune may change (training/corrections/fit.py says how many CNN layers
#: each keeps frozen): the RNN alone, with the CNN's last layer, its last two, or its
#: last three (every layer but the first); ``norm+head+rnn`` also the input's scale and shift
#: per band (folded into the saved model's mean and std).
ADAPT_MODES = ("rnn", "head+rnn", "deep+rnn", "deeper+rnn", "norm+head+rnn")

#: A fine-tune's held-out phases on different splits of the polygons (cross-validation,
#: training/corrections/holdout.fold_holdouts): the default, and the most a round may run.
FINETUNE_FOLDS = 1
MAX_FOLDS = 5

#: How far a hand-drawn correction's outline may be off the object's edge, in metres: the
#: fit leaves that band inside each outline out of its loss (training/corrections/
#: interior.py; the refined map still shows the polygons whole). The default (none) and
#: the most. Measured in docs/results_corrections.md "Session 31": a band gives back most
#: of what rough outlines cost on imagery the model reads, and costs on imagery new to it,
#: so it is the CLI's and Processing's option only, and the dialog asks for outlines drawn
#: just inside the edges instead.
EDGE_BAND_M = 0.0
MAX_EDGE_BAND_M = 10.0
#: Whether a fine-tune leaves out of its loss the strip of an object's polygon drawn
#: past the object's edge that the image shows clearly inside the outline (training/
#: corrections/overdrawn.py; FitParams.outline_edges, `finetune --[no-]outline-edges`,
#: Processing's OUTLINE_EDGES; the dialog's rounds take this default). On since session
#: 32: traced outlines gave the same rounds to the decimal (32 own-scene, 20 never-seen),
#: outlines a metre too generous gained (docs/results_corrections.md "Session 32").
OUTLINE_EDGES = True
#: Whether a fine-tune learns each object polygon with its outline moved onto the edges
#: the image shows within 1.5 m (training/corrections/snap_outlines.snapped_kept, the
#: move `map-refiner snap-outlines` writes as a layer), while the model keeps the
#: polygons as drawn for the refine's burn (FitParams.snap_outlines, `finetune
#: --[no-]snap-outlines`, Processing's SNAP_OUTLINES; the dialog's rounds take this
#: default). On since session 34 (docs/results_corrections.md "Session 34"; largest
#: errors, K=4/16, the bundled model's eight scenes over two seeds and four never-seen
#: groups over up to three): traced outlines own +183.1 against +162.5, never seen +530.5
#: against +524.1; a metre to one side +76.8 / +633.0 against +49.4 / +648.2; rough
#: +101.1 / +118.5 against +80.2 / +95.5; a metre too generous +80.4 / +507.3 against
#: +49.5 / +451.5 (13 own rounds worse against 10); no never-seen round worse either way.
#: For users drawing roughly what the where-to-draw list or chance shows them it is a
#: wash (+393.1 against +376.6, 15 rounds worse against 11).
SNAP_OUTLINES = True
#: An adopted fit's change gate (engine/networks/gate.py; FitParams.change_gate, `finetune
#: --change-gate`, Processing's CHANGE_GATE; the dialog's rounds take this default). Set
#: in session 38 (docs/results_corrections.md "Session 38") on the 86 adopted
#: largest-errors rounds session 36 kept (own and never-seen scenes, traced, rough and
#: loose drawing), refined with their changes kept only where the fitted networks reach a
#: gate (dev/corrections/changes_probe.py). The rule, fixed before the uncertainty and
#: random users' rounds were measured: the gate with the fewest rounds below their start
#: whose summed gain is not below the ungated one. 0.7: +1186.7 (7 below, worst -1.4)
#: against +1176.8 ungated (15 below, worst -10.5); 0.6 sums more (+1213.4) with 10 below
#: (worst -3.8). On 122 rounds made afterwards (other users, seeds and recipes): 14 below
#: their start against 31 ungated and 19 at 0.6, worst -7.4 against -25.2 and -17.0,
#: +656.9 against +627.7 and +688.1.
CHANGE_GATE = 0.7
#: With the gate, a round whose polygons are all of one class keeps changes to that class
#: only (FitParams.change_to_drawn, ModelConfig.change_to; `finetune --any-change` and
#: Processing's CHANGES_TO_DRAWN turn it off). Session 39 (docs/results_corrections.md):
#: found on fits of never-seen Kampala's four missed roofs trained longer than a round,
#: which erased real roofs elsewhere (44.5 -> 35.1 and 35.3 gated; 47.7 with the rule);
#: on the 205 adopted rounds of sessions 36-38 -4.5 points summed (+1840.7 against
#: +1845.2), the rounds below their start (19) and the worst (-7.4) unchanged; on 46
#: rounds made afterwards 4 below their start instead of 5, the worst -0.7 instead of
#: -5.2 (a product round on never-seen Kampala, 44.5 -> 39.3 gated, 49.8 with the rule),
#: -0.7 summed.
CHANGES_TO_DRAWN = True

#: The value-map syntax: raster or field value, a colon, the class index.
VALUE_MAP_EXAMPLE = "0:0,255:1"
_PAIR = re.compile(r"^(.+?)\s*[:=]\s*(\d+)$")  # "=" was Processing's separator


def parse_bands(text: str | None) -> list[int] | None:
    """``"3,2,1"`` -> ``[3, 2, 1]`` (1-based bands in the order the model reads them);
    empty: None (the model's own, or the bands the image names red, green and blue)."""
    if text is None or not text.strip():
        return None
    try:
        bands = [int(b) for b in text.replace(" ", "").split(",")]
    except ValueError:
        raise MapRefinerError(
            f"Bad band list {text!r}; use 1-based band numbers, e.g. '1,2,3' or '3,2,1'."
        ) from None
    if any(b < 1 for b in bands):
        raise MapRefinerError(f"Bands are numbered from 1; got {text!r}.")
    return bands


def choice(value: str | None, choices: tuple[str, ...], what: str) -> str:
    """``value`` (any case; empty: the first choice) if it is one of ``choices``."""
    name = (value or choices[0]).strip().lower()
    if name not in choices:
        raise MapRefinerError(f"Unknown {what} {value!r}; use one of {', '.join(choices)}.")
    return name


def label_mode(value: str | None) -> str:
    """The label mode ``value`` names (``full`` is read as ``tile``)."""
    name = (value or LABEL_MODES[0]).strip().lower()
    return choice(_LABEL_MODE_ALIASES.get(name, name), LABEL_MODES, "label mode")


def parse_value_map(text: str | None) -> dict[str, int] | None:
    """``"0:0,255:1"`` -> ``{"0": 0, "255": 1}`` (value -> class index); empty: None.

    Values may contain colons (the index follows the last one); ``0=0,255=1``
    is read too.
    """
    if not (text or "").strip():
        return None
    mapping: dict[str, int] = {}
    for item in (text or "").split(","):
        match = _PAIR.match(item.strip())
        if not match:
            raise MapRefinerError(
                f"Cannot read {item.strip()!r} in the value map; write value:class pairs "
                f"such as {VALUE_MAP_EXAMPLE}."
            )
        mapping[match.group(1).strip()] = int(match.group(2))
    return mapping


def parse_raster_value_map(text: str | None, what: str) -> dict[int, int] | None:
    """A value map whose keys are raster values (whole numbers): ``"0:0,255:1"`` ->
    ``{0: 0, 255: 1}``; empty: None. ``what`` names the option in the error."""
    return numeric_value_map(parse_value_map(text), what)


def numeric_value_map(m: dict[str, int] | None, what: str) -> dict[int, int] | None:
    """``{"255": 1}`` -> ``{255: 1}``: a parsed value map whose keys must be raster
    values (whole numbers)."""
    if not m:
        return None
    try:
        return {int(k): int(v) for k, v in m.items()}
    except ValueError:
        raise MapRefinerError(
            f"{what} maps raster values, e.g. {VALUE_MAP_EXAMPLE}; got {', '.join(map(str, m))}."
        ) from None
