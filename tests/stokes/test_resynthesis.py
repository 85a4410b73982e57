"""chi^2 of the Stokes networks' atmospheres by LTE re-synthesis (fastinv.stokes.inversion.resynthesis).

References: the chi^2 distribution of pure Gaussian noise (an analytic limit: reduced chi^2
of nu = 4 N_lambda residuals has mean 1 and standard deviation sqrt(2 / nu)), and an
independent node-to-depth interpolation (numpy.interp and SciPy's natural CubicSpline, row
by row).
"""

import numpy as np
import pytest
from fastinv.stokes import LTE, StokesNet
from fastinv.stokes.inversion.resynthesis import NEEDED, Resynthesis
from fastinv.stokes.synthesis import atmospheres
from fastinv.stokes.synthesis.training_sets import lte_training_set
from scipy.interpolate import CubicSpline

N = 120


@pytest.fixture(scope="module")
def hinode():
    net = StokesNet.load(instrument="hinode")
    return net, Resynthesis(net, vmic=1.0)


@pytest.fixture(scope="module")
def node_values(hinode):
    """Node values of random training-like atmospheres (what a perfect network would predict)."""
    net, _ = hinode
    atm = atmospheres.random(N, seed=7)
    at = atm.at_nodes(net.nodes)
    return {q: at[q] for q in NEEDED}


def test_depth_grid_matches_row_by_row_interpolation(hinode, node_values):
    net, rs = hinode
    atm = rs.atmospheres(node_values)
    ref = atmospheres.hsra()
    nodes = np.asarray(net.nodes)
    order = np.argsort(nodes)
    lt = ref.log_tau
    t_ref = ref.temperature[0]
    for k in range(0, N, 17):
        for q in ("vlos", "B", "inclination", "azimuth"):
            expect = np.interp(lt, nodes[order], node_values[q][k][order])
            np.testing.assert_allclose(getattr(atm, q)[k], expect, rtol=0, atol=1e-9)
        t = node_values["temperature"][k]
        inside = CubicSpline(nodes[order], t[order], bc_type="natural")(lt)
        top, bottom = nodes.min(), nodes.max()
        t_top, t_bottom = t[np.argmin(nodes)], t[np.argmax(nodes)]
        expect = np.where(lt < top, t_top + t_ref - np.interp(top, lt, t_ref), inside)
        expect = np.where(lt > bottom, t_bottom + t_ref - np.interp(bottom, lt, t_ref), expect)
        np.testing.assert_allclose(atm.temperature[k], expect, rtol=1e-12, atol=1e-8)
    np.testing.assert_array_equal(atm.vmic, 1.0)


def test_noise_only_residuals_give_chi2_of_one(hinode, node_values):
    """Profiles of exactly representable atmospheres + Gaussian noise: chi^2 follows chi^2_nu / nu."""
    net, rs = hinode
    sigma = 1e-3
    clean = LTE(instrument=rs.instrument).synthesize(rs.atmospheres(node_values), add_noise=False)
    noisy = clean + np.random.default_rng(3).normal(0.0, sigma, clean.shape)
    chi2 = rs.chi2(noisy, node_values, sigma=sigma)
    nu = 4 * clean.shape[-1]
    assert np.all(np.isfinite(chi2))
    # mean of N draws of chi^2_nu / nu: 1 +- sqrt(2 / nu / N); 4 standard deviations
    assert abs(chi2.mean() - 1.0) < 4 * np.sqrt(2.0 / nu / N)
    assert abs(chi2.std() - np.sqrt(2.0 / nu)) < 0.35 * np.sqrt(2.0 / nu)
    # the noise level enters as 1 / sigma^2
    np.testing.assert_allclose(rs.chi2(noisy, node_values, sigma=2 * sigma), chi2 / 4, rtol=1e-12)


def test_fitted_vmic_recovers_a_trial_value(hinode, node_values):
    """vmic="fit": atmospheres with v_mic 1.5 km/s (a trial value) give chi^2 of noise only."""
    net, _ = hinode
    rs = Resynthesis(net)  # vmic="fit"
    sigma = 1e-3
    clean = LTE(instrument=rs.instrument).synthesize(rs.atmospheres(node_values, vmic=1.5), add_noise=False)
    noisy = clean + np.random.default_rng(4).normal(0.0, sigma, clean.shape)
    chi2, fit, vmic = rs.chi2(noisy, node_values, sigma=sigma, return_fit=True)
    nu = 4 * clean.shape[-1]
    # the best of four v_mic can only lower chi^2 below the true one's (mean 1)
    assert 1.0 - 6 * np.sqrt(2.0 / nu / N) < chi2.mean() < 1.0 + 4 * np.sqrt(2.0 / nu / N)
    assert np.median(np.abs(vmic - 1.5)) < 0.05
    np.testing.assert_allclose(fit, clean, atol=5 * sigma)


def test_chi2_separates_the_networks_answer_from_a_wrong_one(hinode):
    """On held-out LTE profiles the network's own atmospheres fit far better than shuffled ones."""
    net, _ = hinode
    rs = Resynthesis(net)
    data = lte_training_set(N, seed=11, noise=1e-3)
    ok = data["status"] == 0
    prof = data["stokes"][ok]
    pred = net.predict(prof)
    chi2, fit, _ = rs.chi2(prof, pred, return_fit=True)
    shuffled = {q: np.roll(np.asarray(v.value), 1, axis=0) for q, v in pred.items()}
    chi2_wrong = rs.chi2(prof, shuffled)
    assert np.all(np.isfinite(chi2))
    assert fit.shape == prof.shape
    assert np.median(chi2_wrong) > 5 * np.median(chi2)


def test_bad_pixels_become_nan_not_failures(hinode, node_values):
    net, rs = hinode
    small = {q: v[:3].copy() for q, v in node_values.items()}
    prof = LTE(instrument=rs.instrument).synthesize(rs.atmospheres(small), add_noise=False)
    prof[1, 2, 5] = np.nan
    small["B"][2, 0] = np.nan
    chi2 = rs.chi2(prof, small, sigma=1e-3)
    assert np.isfinite(chi2[0]) and np.isnan(chi2[1]) and np.isnan(chi2[2])


def test_clear_errors(hinode, node_values):
    net, rs = hinode
    with pytest.raises(ValueError, match=r"shape \(N, 4, 112\)"):
        rs.chi2(np.zeros((2, 4, 50)), node_values)
    with pytest.raises(ValueError, match="sigma must be positive"):
        rs.chi2(np.zeros((N, 4, 112)), node_values, sigma=0.0)
    with pytest.raises(ValueError, match="vmic"):
        Resynthesis(net, vmic=-1.0)
    with pytest.raises(ValueError, match="nodes"):
        rs.chi2(np.zeros((N, 4, 112)), {q: v[:, :3] for q, v in node_values.items()})


def test_cli_chi2_map_of_a_hinode_map(tmp_path, capsys):
    """`fastinv stokes invert --chi2` writes the chi^2 image; it equals Resynthesis on the same
    profiles (the files' known counts / I_c) and the atmosphere the file reports."""
    from _stokes_files import hinode_true_counts, write_hinode_map
    from astropy.io import fits
    from fastinv.cli import main

    nx, ny, ic = 2, 5, 45000.0
    true = hinode_true_counts(nx, ny, ic, seed=21)
    paths, expected = write_hinode_map(tmp_path / "sp", true, spbshft=0)
    out = tmp_path / "map.fits"
    args = ["stokes", "invert", *paths, "--instrument", "hinode", "-o", str(out), "--continuum", str(ic), "-q"]
    assert main(args + ["--chi2"]) == 0, capsys.readouterr().err
    net = StokesNet.load(instrument="hinode")
    rs = Resynthesis(net)
    l2 = {"temperature": "temperature", "vlos": "velocity", "B": "mag_strength"}
    l2.update(inclination="mag_inclination", azimuth="mag_azimuth")
    with fits.open(out) as hdul:
        chi2 = hdul["chi2"].data
        assert chi2.shape == (ny, nx) and hdul[0].header["CHI2VMIC"] == "fit"
        maps = {q: hdul[name].data for q, name in l2.items()}
    for x in range(nx):
        prof = expected[x].transpose(1, 0, 2) / ic  # (ny, 4, 112)
        ref = rs.chi2(prof, {q: v[:, :, x].T for q, v in maps.items()})
        np.testing.assert_allclose(chi2[:, x], ref, rtol=2e-3)
    # without --chi2 there is no such image
    assert main(args + ["--overwrite"]) == 0
    with fits.open(out) as hdul:
        assert "chi2" not in [h.name.lower() for h in hdul]
