"""Regenerate python/fastinv/stokes/data/falc.txt from lightweaver's FAL-C (dev-time only).

lightweaver (MIT licence, C. M. J. Osborne) ships the FAL-C model of Fontenla, Avrett & Loeser
(1993, ApJ 406, 319) on its 82-point column-mass grid (``lightweaver/fal.py``, ``Falc82``).
We let lightweaver convert it to its tau_500 scale (``atmos.tauRef``, computed with its own
background opacity from the model's own n_e and n_H) and interpolate T and v_turb (linearly in
log tau_500) onto fastinv's standard grid log tau_500 = +1.4 ... -4.0, step 0.1.

Run:  python tools/make_falc_table.py   (needs ``pip install lightweaver``)
"""

from __future__ import annotations

import pathlib

import numpy as np


def main() -> None:
    import lightweaver as lw
    from lightweaver.fal import Falc82

    atmos = Falc82()
    logtau = np.log10(atmos.tauRef)
    grid = np.round(np.arange(1.4, -4.0 - 1e-9, -0.1), 1) + 0.0  # +0.0: no "-0.00"
    # tauRef increases with depth; np.interp needs increasing abscissae.
    temp = np.interp(grid, logtau, atmos.temperature)
    vturb = np.interp(grid, logtau, atmos.vturb) / 1e3  # km/s
    out = pathlib.Path(__file__).resolve().parents[1] / "python/fastinv/stokes/data/falc.txt"
    header = (
        "FAL-C (Fontenla, Avrett & Loeser 1993, ApJ 406, 319) on log tau_500, derived from\n"
        f"lightweaver {lw.__version__} lightweaver/fal.py Falc82 (MIT licence) by tools/make_falc_table.py:\n"
        "tau_500 from lightweaver's own scale conversion, T and v_turb interpolated linearly in log tau.\n"
        "columns: log_tau500  T[K]  vmic[km/s]"
    )
    np.savetxt(out, np.column_stack([grid, temp, vturb]), fmt=["%6.2f", "%9.2f", "%7.4f"], header=header)
    print("wrote", out)


if __name__ == "__main__":
    main()
