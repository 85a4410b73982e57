"""Before/after of one libfastinv build on the DEM tolfac ladder: DeepEM's refinement and Basis
Pursuit on a 262 144-pixel crop of the 1024^2 synoptic frame (rows 256-511), CPU seconds per
pixel (best of three) and mean simplex iterations, plus a digest of every output so that two
builds can be checked for identical results, and the one-time set-up per process (the first
call on one pixel less the second: the certificates' enumeration, where the build has them).

Run it once per build, alternating, with each build's libfastinv.so in its own directory (the
editable install's _core finds the library through LD_LIBRARY_PATH before its RUNPATH)::

    LD_LIBRARY_PATH=/path/to/before python bench/dem_ladder_ab.py before
    LD_LIBRARY_PATH=/path/to/after  python bench/dem_ladder_ab.py after

Not a pytest-benchmark case: it has no peer, it compares a build with another
(bench/results/dem_ladder_ab_20261207.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time

import numpy as np
from fastinv import datasets
from fastinv.dem import DeepEM
from fastinv.dem.basis_pursuit import BasisPursuit
from fastinv.dem.io import read_aia


def _best_cpu(fn, rounds: int = 3):
    best, out = float("inf"), None
    for _ in range(rounds):
        t0 = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t0)
    return best, out


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def main(label: str) -> dict:
    obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    y = np.nan_to_num(obs.data)[:, 256:512, :]
    npix = y[0].size
    deepem = DeepEM.load()
    kw = {"exptime": obs.exptime, "n_sample": obs.n_sample}
    bp = BasisPursuit()
    one = y[:, :1, :1]
    deepem.invert(one, **kw)  # the engine's own first-call costs, before the timed pair
    setup = {}
    for name, fn in (("refine", lambda: deepem.invert(one, refine=True, **kw)), ("bp", lambda: bp.solve(one, **kw))):
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        fn()
        setup[name] = (t1 - t0) - (time.perf_counter() - t1)
    plain, _ = _best_cpu(lambda: deepem.invert(y, **kw))
    refined, r = _best_cpu(lambda: deepem.invert(y, refine=True, **kw))
    bp_cpu, b = _best_cpu(lambda: bp.solve(y, **kw))
    return {
        "label": label,
        "pixels": npix,
        "threads": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "refine_us_per_pixel": (refined - plain) / npix * 1e6,
        "refine_iterations_mean": float(r.iterations.mean()),
        "refine_digest": _digest(r.em, r.status, r.tolfac, r.chi2),
        "bp_us_per_pixel": bp_cpu / npix * 1e6,
        "bp_iterations_mean": float(b.iterations.mean()),
        "bp_status_digest": _digest(b.status, b.tolfac),
        "refine_setup_ms": setup["refine"] * 1e3,
        "bp_setup_ms": setup["bp"] * 1e3,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "build")))
