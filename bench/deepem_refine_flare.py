"""Accuracy side of DeepEM's refinement (not a timing): ``evaluate_deepem(refine=True)`` on the
held-out 2011-02-15 flare series, written to bench/results/deepem_refine_flare.json with
BP's tolfac distribution over its solved pixels (the in-band fraction at 1.4 sigma cannot
exceed the share BP solved at 1.4).

    python bench/deepem_refine_flare.py
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
from fastinv import __version__, datasets
from fastinv._atomic import write_text
from fastinv.dem.basis_pursuit import DEEPEM_LOGT, BasisPursuit
from fastinv.dem.evaluate import evaluate_deepem
from fastinv.dem.io import read_aia


def main() -> None:
    metrics = evaluate_deepem(refine=True, threads=2)
    bp = BasisPursuit(logt=DEEPEM_LOGT)
    tolfacs = []
    for slot in datasets.aia_flare_slots():
        obs = read_aia(datasets.aia_flare_files(slot))
        r = bp.solve(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, threads=2)
        tolfacs.append(r.tolfac[r.status == 0])
    t = np.concatenate(tolfacs)
    out = {
        "fastinv": __version__,
        "python": platform.python_version(),
        "load_avg_1min_after": os.getloadavg()[0],
        "bp_ok_tolfac_fraction": {str(v): float((t == v).mean()) for v in np.unique(t)},
        "overall_raw": metrics["overall"],
        "overall_refined": metrics["refined"],
        "refinement": metrics["refinement"],
        "per_slot_raw": metrics["per_slot"],
    }
    path = Path(__file__).parent / "results" / "deepem_refine_flare.json"
    write_text(path, json.dumps(out, indent=1))
    print(json.dumps(out["refinement"], indent=1), out["bp_ok_tolfac_fraction"])


if __name__ == "__main__":
    main()
