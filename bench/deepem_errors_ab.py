"""Before/after of one libfastinv build on DeepEM's error bars: on the 1024^2 synoptic frame,
the CPU seconds of a plain call and of an ``errors=True`` call (best of five each, alternating,
every call into the previous result's arrays with ``out=`` so that faulting in fresh memory
does not blur the comparison), their difference per pixel, and a digest of the error arrays
and the EM so that two builds can be checked for identical results.

Run it once per build, alternating, each build's libfastinv.so and _core module in their own
directory. A change to the public DeepEmErrorModel struct changes _core too, so put that
build's _core in the package before its run::

    LD_LIBRARY_PATH=/path/to/before python bench/deepem_errors_ab.py before
    LD_LIBRARY_PATH=/path/to/after  python bench/deepem_errors_ab.py after

Not a pytest-benchmark case: it has no peer, it compares a build with another
(bench/results/deepem_errors_ab_20261207.md). The issue's ratio with Basis Pursuit beside it
is bench_deepem_refine.py's.
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
from fastinv.dem.io import read_aia


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def main(label: str, threads: int = 1, rounds: int = 5) -> dict:
    obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    y = np.nan_to_num(obs.data)
    deepem = DeepEM.load()
    kw = {"exptime": obs.exptime, "n_sample": obs.n_sample, "threads": threads}
    outs = {False: deepem.invert(y, **kw), True: deepem.invert(y, errors=True, **kw)}
    cpu = {False: [], True: []}
    for _ in range(rounds):
        for errors in (False, True):
            t0 = time.process_time()
            deepem.invert(y, errors=errors, out=outs[errors], **kw)
            cpu[errors].append(time.process_time() - t0)
    plain, with_errors = min(cpu[False]), min(cpu[True])
    r = outs[True]
    return {
        "label": label,
        "pixels": int(y[0].size),
        "threads": threads,
        "load_avg_1min": os.getloadavg()[0],
        "plain_cpu_s": plain,
        "errors_cpu_s": with_errors,
        "errors_extra_us_per_pixel": (with_errors - plain) / y[0].size * 1e6,
        "errors_over_plain": with_errors / plain,
        "digest": _digest(r.em_err, r.logt_err, r.total_em_err, r.em),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "build")))
