"""ME inversion of LTE profiles (fastinv.stokes.inversion.me_vs_lte).

Reference: an analytic limit. When B, inclination, azimuth and v_LOS do not change with
depth, the Zeeman splitting, polarisation and Doppler shift of the LTE profiles are exactly
those of a Milne-Eddington atmosphere with the same vector field (only the line strength
and source function depend on T(tau)), so the ME fit must return the atmosphere's values.
"""

import numpy as np
import pytest
from fastinv.stokes import LTE, Instrument, MEInversion
from fastinv.stokes.inversion.me_vs_lte import COMPARED, compare_with_atmospheres, compare_with_lte
from fastinv.stokes.synthesis import atmospheres

# one node for each quantity = constant with depth
CONSTANT = dict(nodes_vlos=(-1.5,), nodes_B=(-1.5,), nodes_inclination=(-1.5,), B=(200.0, 3000.0))


def test_depth_independent_field_is_recovered_at_every_depth():
    inst = Instrument.hinode_sp()
    atm = atmospheres.random(150, seed=2, ranges=CONSTANT)
    prof = LTE(instrument=inst).synthesize(atm, seed=1)  # the instrument's 1e-3 I_c noise
    res = MEInversion(instrument=inst).invert(prof, sigma=1e-3)
    truth = {q: getattr(atm, q)[:, ::5] for q in COMPARED}  # every 5th depth point
    table = compare_with_atmospheres(res, truth, atm.log_tau[::5])
    assert table["pixels"] >= 145
    # measured: B 0.4 % (median), inclination 0.15 deg, azimuth 0.24 deg, v_LOS 1 m/s
    b = np.median(np.abs(res.parameters["B"].value - atm.B[:, 0]) / atm.B[:, 0])
    assert b < 0.02
    for q, bar in (("inclination", 1.0), ("azimuth", 1.0), ("vlos", 0.02)):
        mad = table[q]["median_abs_diff"]
        assert max(mad) < bar, (q, mad)
        assert np.ptp(mad) < 1e-9  # the same at every depth: the field is constant


def test_stratified_table_has_every_quantity_and_depth():
    table = compare_with_lte(n=30, seed=4, threads=1)
    assert table["set"]["kind"] == "fastinv LTE" and table["pixels"] >= 25
    for q in COMPARED:
        row = table[q]
        assert len(row["median_abs_diff"]) == len(row["log_tau"]) == 7
        assert row["best_log_tau"] in row["log_tau"]
        assert np.all(np.isfinite(row["median_abs_diff"]))


def test_truth_shape_is_checked():
    res = MEInversion().invert(np.ones((2, 4, 112)) * np.array([1.0, 0, 0, 0])[:, None], sigma=1e-3)
    with pytest.raises(ValueError, match=r"truth\['B'\] must have shape"):
        compare_with_atmospheres(res, {q: np.zeros((2, 3)) for q in COMPARED}, [0.0, -1.0])
