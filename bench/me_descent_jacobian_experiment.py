"""Experiment (issue 14): a coarse-grid Jacobian for the LM steps, the exact one at the end.

Same pixels as bench_me_inversion.py (seed 11, noise seed 12, 1e-3 I_c, Hinode SP, 9 free
parameters); each start (classical, network) inverted with ``descent_jacobian="exact"`` and
``"coarse"`` alternately, 3 times each, 1 thread; the fastest CPU time of each is reported with
the load average. Prints markdown. Run: ``python bench/me_descent_jacobian_experiment.py``.
"""

from __future__ import annotations

import os
import platform
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402
from fastinv.stokes import Instrument, MEInversion  # noqa: E402
from fastinv.stokes.synthesis.milne_eddington import ME_PARAMETERS  # noqa: E402
from fastinv.stokes.synthesis.sampling import sample_me_parameters  # noqa: E402

N = 1000


def main() -> None:
    p = sample_me_parameters(N, 11, ranges={"filling_factor": (1, 1, "uniform")})
    truth = np.column_stack([p[k] for k in ME_PARAMETERS[:10]])
    print(f"- {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared), {time.ctime()}")
    print("\n| start | Jacobian | px per CPU-s | median chi2 | median / mean trials | share ok | load |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for init in ("classical", "network"):
        invs = {
            d: MEInversion(instrument=Instrument.hinode_sp(), init=init, descent_jacobian=d)
            for d in ("exact", "coarse")
        }
        model = invs["exact"].model
        clean = model.synthesize({k: truth[:, i] for i, k in enumerate(ME_PARAMETERS[:10])}, add_noise=False)
        ic = truth[:, 7] + truth[:, 8]
        obs = clean + 1e-3 * ic[:, None, None] * np.random.default_rng(12).standard_normal(clean.shape)
        sig = 1e-3 * ic
        guess = invs["exact"].initial_guess(obs)
        cpu, res, load = {}, {}, {}
        for _ in range(3):
            for d, inv in invs.items():
                t = time.process_time()
                res[d] = inv.invert(obs, sig, threads=1, init=guess)
                cpu[d] = min(cpu.get(d, np.inf), time.process_time() - t)
                load[d] = max(load.get(d, 0.0), os.getloadavg()[0])
        for d, r in res.items():
            it = r.iterations
            print(
                f"| {init} | {d} | {N / cpu[d]:,.0f} | {np.median(r.chi2[:, 4]):.4f} | {np.median(it):.0f} / "
                f"{it.mean():.2f} | {np.mean(r.status == 0):.3f} | {load[d]:.1f} |"
            )
        e, c = res["exact"], res["coarse"]
        two = invs["coarse"].invert(obs, sig, threads=2, init=guess)
        same = all(np.array_equal(two.parameters[k].value, c.parameters[k].value, equal_nan=True) for k in c.parameters)
        pe = np.column_stack([e.parameters[k].value for k in ME_PARAMETERS[:9]])
        pc = np.column_stack([c.parameters[k].value for k in ME_PARAMETERS[:9]])
        sd = np.column_stack([e.errors[k].value for k in ME_PARAMETERS[:9]])
        dz = (np.abs(pc - pe) / sd).max(axis=1)
        dchi = np.abs(c.chi2[:, 4] - e.chi2[:, 4]) / e.chi2[:, 4]
        both = (e.status == 0) & (c.status == 0)
        print(
            f"| {init} | coarse vs exact | ratio {cpu['exact'] / cpu['coarse']:.2f}x | "
            f"chi2 rel. diff p99 {np.percentile(dchi, 99):.1e} | pixels > 0.05 sigma: {np.mean(dz > 0.05):.3f} "
            f"(both ok: {np.mean(dz[both] > 0.05):.3f}) | 1 vs 2 threads bitwise: {same} | |"
        )


if __name__ == "__main__":
    main()
