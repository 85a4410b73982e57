"""Network initialisation of the Milne-Eddington inversion (``MEInversion(init="network")``):
the shipped ME networks against the classical initial guess on the same noisy ME pixels
(measured bars: median chi2 not worse, fewer median iterations, closer initial guesses),
the target encoding against its analytic inverse, training (``fastinv train stokes --target
me``) end to end, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastinv.stokes import Instrument, MEInversion
from fastinv.stokes.inversion.me import ME_FIT_PARAMETERS
from fastinv.stokes.inversion.me_network import (
    SHIPPED,
    MENetwork,
    decode_outputs,
    encode_targets,
    find_me_network,
)
from fastinv.stokes.inversion.network import default_model_path
from fastinv.stokes.synthesis.training_sets import instrument_by_name
from fastinv.train.stokes_me import me_set


def _shipped(key: str):
    path = default_model_path().parent / SHIPPED[key]
    if not path.exists():
        pytest.skip(f"{path.name} is not shipped in this checkout")
    return path


def test_encoding_round_trips_to_the_parameters():
    rng = np.random.default_rng(3)
    n = 500
    p = {
        "B": rng.uniform(20, 4000, n),
        "inclination": rng.uniform(1, 179, n),
        "azimuth": rng.uniform(0, 180, n),
        "vlos": rng.uniform(-5, 5, n),
        "doppler_width": rng.uniform(20, 60, n),
        "damping": rng.uniform(0.01, 0.8, n),
        "eta0": np.exp(rng.uniform(0, np.log(60), n)),
        "S0": rng.uniform(0, 0.5, n),
    }
    p["S1"] = 1 - p["S0"]
    ic = rng.uniform(0.9, 1.1, n)
    got = decode_outputs(encode_targets(p, ic), ic)
    names = ("B", "inclination", "azimuth", "vlos", "doppler_width", "damping", "eta0", "S0", "S1")
    for i, k in enumerate(names):
        if k == "azimuth":
            d = (got[:, i] - p[k] + 90) % 180 - 90
            assert np.abs(d).max() < 1e-9
        else:
            np.testing.assert_allclose(got[:, i], p[k], rtol=1e-9, atol=1e-9, err_msg=k)
    assert np.all(got[:, 9] == 1.0)


@pytest.mark.parametrize("key, n", [("hinode_sp", 300), ("visp", 150)])
def test_network_init_beats_the_classical_guess(key, n):
    _shipped(key)
    inst = instrument_by_name("hinode" if key == "hinode_sp" else "visp_lines")
    inv = MEInversion(instrument=inst)
    assert inv.init_method == "network"  # the default where a model exists
    d = me_set(n, "hinode" if key == "hinode_sp" else "visp", seed=2024)  # not a training seed
    obs = d["stokes"].astype(np.float64)
    truth = d["parameters"]
    net = inv.invert(obs, threads=1)
    cls = inv.invert(obs, threads=1, init="classical")
    # fit quality: median chi2 not worse (1 % slack for the last LM step), most pixels ok.
    # Measured on ViSP after the 12-parameter LM and its coarser synthesis grid landed: 98.7 %
    # vs 100 % ok, two weak-field pixels (B 78 and 217 G) reaching the 100-iteration limit at
    # chi2 1.04 and 1.09 from the network's start: 2 % slack.
    assert np.median(net.chi2[:, 4]) <= 1.01 * np.median(cls.chi2[:, 4])
    assert np.mean(net.status == 0) >= np.mean(cls.status == 0) - 0.02
    # fewer iterations from the network's start
    assert np.median(net.iterations) < np.median(cls.iterations)
    assert np.mean(net.iterations) < np.mean(cls.iterations)
    # the guesses themselves: closer to the truth than the classical ones for B and eta0 (the
    # classical one fixes eta0 at 10); the centre-of-gravity velocity is as good as the
    # network's (measured 0.16 vs 0.17 km/s median on Hinode), so only within 25 % of it
    g_net = inv.initial_guess(obs, "network")
    g_cls = inv.initial_guess(obs, "classical")
    err = lambda g, i, k: np.median(np.abs(g[:, i] - truth[k]))  # noqa: E731
    for i, k in ((0, "B"), (6, "eta0")):
        assert err(g_net, i, k) < err(g_cls, i, k), (k, err(g_net, i, k), err(g_cls, i, k))
    assert err(g_net, 3, "vlos") < 1.25 * err(g_cls, 3, "vlos") and err(g_net, 3, "vlos") < 0.5
    # network guess for B within 25 % (median) where the field is above 500 G
    strong = truth["B"] > 500
    assert np.median(np.abs(g_net[strong, 0] / truth["B"][strong] - 1)) < 0.25


def test_network_found_only_for_its_grid_and_lines():
    _shipped("hinode_sp")
    sp = Instrument.hinode_sp()
    assert find_me_network(sp.wavelength, ["FeI_6301", "FeI_6302"]) is not None
    assert find_me_network(sp.wavelength + 0.01, ["FeI_6301", "FeI_6302"]) is None
    assert find_me_network(sp.wavelength, ["FeI_6302"]) is None
    # another grid: classical by default, and asking for the network is a clear error
    wl = np.linspace(6300.9, 6303.2, 90)
    assert MEInversion(wavelength=wl).init_method == "classical"
    with pytest.raises(ValueError, match="no ME-initialisation model"):
        MEInversion(wavelength=wl, init="network")
    with pytest.raises(ValueError, match="init must be"):
        MEInversion(instrument=sp, init="neural")


def test_bad_pixels_and_wrong_models(tmp_path):
    path = _shipped("hinode_sp")
    inv = MEInversion(instrument=Instrument.hinode_sp(), network=path)
    d = me_set(4, "hinode", seed=5)
    obs = d["stokes"].astype(np.float64)
    obs[1, 2, 30] = np.nan
    obs[2, 0] = 0.0  # no intensity
    r = inv.invert(obs, sigma=1e-3, threads=1)
    assert r.status[1] == 3 and r.status[2] == 4  # bad input: NaN profile; too dark: no intensity
    assert np.isnan(r.parameters["B"][1]) and np.isnan(r.parameters["B"][2])
    assert r.status[0] in (0, 1, 2) and r.status[3] in (0, 1, 2)
    # a stratified Stokes network is not an ME-initialisation model
    with pytest.raises(ValueError, match="not an ME-initialisation model"):
        MENetwork(default_model_path("hinode"))
    # a model for another grid
    with pytest.raises(ValueError, match="not this inversion's"):
        MEInversion(instrument=instrument_by_name("visp_lines"), network=path)
    with pytest.raises(ValueError, match=r"shape \(n, 4, 112\)"):
        MENetwork(path).predict(np.zeros((3, 4, 50)))


def test_train_cli_writes_a_loadable_model(tmp_path, capsys):
    pytest.importorskip("torch")
    from fastinv.cli import main

    out = tmp_path / "me.safetensors"
    args = ["train", "stokes", "--target", "me", "--n", "600", "--epochs", "1", "--batch", "200"]
    rc = main([*args, "--threads", "1", "-q", "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    card = json.loads(out.with_suffix(".safetensors.json").read_text())
    assert card["kind"] == "fastinv.me_init" and card["training"]["profiles"] == 600
    assert "--target me --instrument hinode --n 600 --epochs 1" in card["training"]["command"]
    assert card["training"]["export_max_rel_error"] <= 1e-4
    inv = MEInversion(instrument=Instrument.hinode_sp(), network=out, init="network")
    g = inv.initial_guess(me_set(3, "hinode", seed=9)["stokes"].astype(np.float64))
    assert g.shape == (3, len(ME_FIT_PARAMETERS)) and np.isfinite(g).all()
    # DATA belongs to the atmosphere target
    assert main([*args, "data.h5", "-q", "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "drop 'data.h5'" in capsys.readouterr().err


def test_network_start_is_bitwise_the_same_for_any_thread_count():
    _shipped("hinode_sp")
    inv = MEInversion(instrument=Instrument.hinode_sp())
    obs = me_set(40, "hinode", seed=77)["stokes"].astype(np.float64)
    one, two = inv.invert(obs, threads=1), inv.invert(obs, threads=2)
    for k in ("B", "inclination", "azimuth", "vlos"):
        np.testing.assert_array_equal(one.parameters[k].value, two.parameters[k].value)
    np.testing.assert_array_equal(one.iterations, two.iterations)
    np.testing.assert_array_equal(inv.initial_guess(obs), inv.initial_guess(obs))


@pytest.mark.parametrize("key, n", [("hinode_sp", 400), ("visp", 200)])
def test_network_start_damping_reaches_the_same_fits(key, n):
    """From the network's guess LM starts less damped (lambda 1e-3, not 0.1): the same minima
    as the 0.1 start (the path the recovery and sigma-calibration tests validate) in fewer
    steps. Measured on 1 000 Hinode pixels twice: 0.6-0.7 % of them > 0.05 sigma apart,
    0.4-0.6 % with chi2 > 1e-4 apart (as many lower as higher); mean steps 6.1 -> 4.5."""
    _shipped(key)
    inst = instrument_by_name("hinode" if key == "hinode_sp" else "visp_lines")
    fast, ref = MEInversion(instrument=inst), MEInversion(instrument=inst, lambda_start=0.1)
    obs = me_set(n, "hinode" if key == "hinode_sp" else "visp", seed=2031)["stokes"].astype(np.float64)
    a, b = fast.invert(obs, threads=1), ref.invert(obs, threads=1)
    names = ME_FIT_PARAMETERS[:9]
    apart = np.max([np.abs(a.parameters[k].value - b.parameters[k].value) / b.errors[k].value for k in names], axis=0)
    assert np.mean(apart <= 0.05) >= 0.97, np.mean(apart <= 0.05)
    rel = np.abs(a.chi2[:, 4] - b.chi2[:, 4]) / b.chi2[:, 4]
    assert np.mean(rel <= 1e-4) >= 0.97, np.mean(rel <= 1e-4)
    assert abs(np.median(a.chi2[:, 4]) / np.median(b.chi2[:, 4]) - 1) < 2e-3
    assert np.mean(a.status == 0) >= np.mean(b.status == 0) - 0.01
    assert np.mean(a.iterations) < 0.9 * np.mean(b.iterations)
    # the classical start keeps lambda 0.1: identical to asking for it
    c, d = fast.invert(obs[:50], threads=1, init="classical"), ref.invert(obs[:50], threads=1, init="classical")
    np.testing.assert_array_equal(c.parameters["B"].value, d.parameters["B"].value)
    np.testing.assert_array_equal(c.iterations, d.iterations)
