"""A model with another model's detail RNN grafted on, to score a candidate through the
product's refine path (the detail pass) before a detail RNN of its own is trained.

    python -m map_refiner.dev.default_model.graft_detail CANDIDATE OUT [--donor MODEL]

The donor (default: the bundled model) gives its ``detail_rnn.*`` tensors, its detail
iteration count and temperature; everything else is the candidate's.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from ...engine.modelfile.io import load_model, save_model


def graft(candidate: Path, out: Path, donor: Path | None = None) -> None:
    donor_net, donor_cfg = load_model(donor)
    if donor_net.detail_rnn is None:
        raise SystemExit(f"{donor or 'the bundled model'} has no detail RNN to give")
    net, cfg = load_model(candidate)
    net.detail_rnn = copy.deepcopy(donor_net.detail_rnn)
    cfg.detail_iterations = donor_cfg.detail_iterations
    cfg.detail_temperature = donor_cfg.detail_temperature
    save_model(net, cfg, out, overwrite=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidate", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--donor", type=Path, default=None, help="default: the bundled model")
    a = ap.parse_args(argv)
    graft(a.candidate, a.out, a.donor)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
