"""Stokes training pipeline: populations, line-window synthesis, targets, weak-field term,
training + export + evaluation end to end (small), and the lightweaver test set.

References: the documented population ranges; full synthesis on every grid point (for the
line window); row-wise numpy.interp (targets); an analytic weak-field profile; PyTorch (the
exported network run by fastinv's engine); lightweaver (an independent code) for the
evaluation set."""

import json

import numpy as np
import pytest
from fastinv.stokes import LTE, atmospheres
from fastinv.stokes.inversion.evaluate import metrics
from fastinv.stokes.synthesis.training_sets import instrument_by_name, lte_training_set, write_training_set

torch = pytest.importorskip("torch")
pytest.importorskip("h5py")

from fastinv.train import stokes as ts  # noqa: E402


def test_mixture_follows_the_documented_populations():
    atm, pop = atmospheres.random_mixture(1000, seed=4)
    again, pop2 = atmospheres.random_mixture(1000, seed=4)
    assert np.array_equal(atm.temperature, again.temperature) and np.array_equal(pop, pop2)
    names = list(atmospheres.POPULATIONS)
    counts = np.bincount(pop, minlength=len(names))
    for name, count in zip(names, counts):
        assert count == round(1000 * atmospheres.POPULATIONS[name]["weight"])
    for index, name in enumerate(names):
        spec = atmospheres.POPULATIONS[name]
        sel = pop == index
        lo, hi = spec["ranges"]["B"]
        assert atm.B[sel].min() >= lo - 1e-9 and atm.B[sel].max() <= hi + 1e-9
        if spec.get("both_polarities"):
            cos_lo = spec["ranges"]["cos_inclination"][0]
            cosg = np.abs(np.cos(np.deg2rad(atm.inclination[sel])))
            assert cosg.min() >= cos_lo - 1e-9
            # both polarities present, about half each
            toward = np.mean(atm.inclination[sel][:, 0] < 90.0)
            assert 0.35 < toward < 0.65
    # the umbra is Maltby M (4040 K at log tau 0) +- the perturbation's constant term (300 K)
    t0 = atm.temperature_at(0.0)
    umbra = t0[pop == names.index("umbra")]
    assert abs(umbra.mean() - 4040.0) < 60.0 and umbra.min() > 4040.0 - 300.0 * 2.5
    quiet = t0[pop == names.index("quiet")]
    assert quiet.mean() > 6200.0


def test_line_window_matches_full_synthesis():
    atm, _ = atmospheres.random_mixture(16, seed=9)
    visp = instrument_by_name("visp", noise=0.0)
    full = LTE(instrument=visp).synthesize(atm, threads=1)
    windowed = LTE(instrument=visp, line_window=1.5).synthesize(atm, threads=1)
    # measured 3.9e-6 over 400 atmospheres; 1e-5 I_c is 1 % of the noise level
    assert np.max(np.abs(full - windowed)) < 1e-5
    with pytest.raises(ValueError, match="line_window"):
        LTE(instrument=visp, line_window=-1.0)


def test_targets_match_rowwise_interpolation():
    atm, _ = atmospheres.random_mixture(20, seed=2)
    d = {k: getattr(atm, k) for k in ("temperature", "vlos", "B", "inclination", "azimuth")}
    nodes = ts.NODE_SETS["21"]
    y = ts.targets(d, atm.log_tau, nodes, ("temperature", "B_los", "azimuth_sin2"))
    n = len(nodes)
    for i in range(20):
        np.testing.assert_allclose(y[i, :n], np.interp(nodes, atm.log_tau, atm.temperature[i]), rtol=1e-6)
        blos = atm.B[i] * np.cos(np.deg2rad(atm.inclination[i]))
        np.testing.assert_allclose(y[i, n : 2 * n], np.interp(nodes, atm.log_tau, blos), rtol=1e-5, atol=1e-3)
        s2 = np.sin(2 * np.deg2rad(atm.azimuth[i]))
        np.testing.assert_allclose(y[i, 2 * n :], np.interp(nodes, atm.log_tau, s2), atol=1e-6)


def test_weak_field_recovers_an_analytic_profile():
    wl = instrument_by_name("hinode").wavelength
    depth, width, blos = 0.6, 0.08, 350.0
    g = np.exp(-(((wl - 6302.4936) / width) ** 2))
    intensity = 1.0 - depth * g
    didl = 2.0 * depth * (wl - 6302.4936) / width**2 * g
    v = -4.6686e-13 * 2.5 * 6302.4936**2 * blos * didl
    stokes = np.stack([intensity, 0 * wl, 0 * wl, v])[None]
    # the only error is the (4th-order) finite-difference slope on the 21.5 mA grid: 0.2 %
    np.testing.assert_allclose(ts.weak_field_blos(stokes, wl), blos, rtol=0.01)


def test_metrics_definitions():
    rng = np.random.default_rng(0)
    truth = {
        "temperature": rng.uniform(4000, 7000, (200, 2)),
        "B": np.full((200, 2), 1000.0),
        "inclination": np.full((200, 2), 90.0),
        "azimuth": rng.uniform(0, 180, (200, 2)),
    }
    pred = {
        "temperature": truth["temperature"] + 10.0,
        "azimuth": (truth["azimuth"] + 179.0) % 180.0,
    }  # 1 degree below, across the wrap
    m = metrics(pred, truth, [0.0, -1.0])["per_node"]
    np.testing.assert_allclose(m["temperature"]["r"], 1.0, atol=1e-12)
    np.testing.assert_allclose(m["temperature"]["bias"], 10.0, rtol=1e-9)
    np.testing.assert_allclose(m["azimuth"]["bias"], -1.0, rtol=1e-6)
    np.testing.assert_allclose(m["azimuth"]["rmse"], 1.0, rtol=1e-6)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    path = tmp_path_factory.mktemp("stokes") / "set.h5"
    write_training_set(path, lte_training_set(3000, instrument="hinode", seed=11, threads=2))
    return path


@pytest.mark.parametrize("architecture", ["compact-cnn", "muisca"])
def test_train_export_evaluate(small_set, tmp_path, architecture):
    from fastinv.stokes.inversion.network import StokesNet

    out = tmp_path / f"{architecture}.safetensors"
    card = ts.train(
        small_set,
        out,
        architecture=architecture,
        epochs=2,
        threads=1,
        progress=False,
        max_profiles=2000 if architecture == "muisca" else None,
    )
    assert json.loads((tmp_path / f"{architecture}.safetensors.json").read_text())["outputs"] == card["outputs"]
    net = StokesNet.load(out)
    assert net.card["architecture"] == architecture and net.card["metrics"] == card["metrics"]
    # the engine runs exactly the trained PyTorch network (checked by train() on 512
    # validation profiles against PyTorch itself)
    assert card["training"]["export_max_rel_error"] <= 1e-5
    data = ts.read_set(small_set, slice(2900, 3000))
    pred = net.predict(data["stokes"])
    assert all(np.all(np.isfinite(v)) for v in pred.values())
    # a real fit on 2 000-2 700 profiles in 2 epochs: T at log tau 0..-2 correlates with the
    # truth (an untrained network: |r| < 0.1; MUISCA's 7 M parameters learn slower)
    summary = card["metrics"]["summary"]
    floor = 0.8 if architecture == "compact-cnn" else 0.4
    assert summary["temperature_r_mean_logtau_0_to_-2"] > floor, summary
    if architecture == "compact-cnn":
        assert set(card["metrics"]["per_node"]) == {"temperature", "vlos", "B", "inclination", "azimuth"}
    else:
        assert set(card["metrics"]["per_node"]) == {"temperature", "vlos", "B_los"}


def test_weak_field_term_trains(small_set, tmp_path):
    card = ts.train(
        small_set,
        tmp_path / "pinn.safetensors",
        epochs=1,
        threads=1,
        progress=False,
        physics_weight=0.1,
        max_profiles=1000,
    )
    assert card["training"]["physics_weight"] == 0.1
    assert np.isfinite(card["training"]["history"][0]["train_loss"])


def test_lightweaver_set_agrees_with_fastinv_lte():
    pytest.importorskip("lightweaver")
    from fastinv.stokes.inversion.evaluate import lightweaver_set

    wl = instrument_by_name("hinode").wavelength
    ref = lightweaver_set(2, "hinode", seed=5, wavelength=wl)
    atm = atmospheres.Atmospheres(ref["log_tau"], **ref["atmosphere"])
    ours = LTE(instrument=instrument_by_name("hinode")).synthesize(atm, seed=1)
    # each normalised to its own HSRA continuum; the LTE-vs-lightweaver test allows 2 % in
    # I/I_c, plus 2 x 1e-3 noise here
    assert np.max(np.abs(ours[:, 0] - ref["stokes"][:, 0])) < 0.03


def test_cli_train_and_evaluate(small_set, tmp_path, capsys):
    from fastinv.cli import main

    model = tmp_path / "cli.safetensors"
    assert (
        main(
            [
                "train",
                "stokes",
                str(small_set),
                "-o",
                str(model),
                "--epochs",
                "1",
                "--max-profiles",
                "1500",
                "--threads",
                "1",
                "-q",
            ]
        )
        == 0
    )
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "stokes", "--model", str(model), "--data", str(small_set), "-o", str(out)]) == 0
    metrics = json.loads(out.read_text())["synthetic"]
    # the same held-out rows as the card's own metrics: identical numbers
    card = json.loads((tmp_path / "cli.safetensors.json").read_text())
    assert metrics["per_node"]["temperature"]["r"] == card["metrics"]["per_node"]["temperature"]["r"]
    assert main(["evaluate", "stokes", "--model", str(model)]) == 2  # nothing to evaluate on
    assert main(["train", "stokes", str(tmp_path / "missing.h5"), "-o", str(model)]) == 1
    assert "error" in capsys.readouterr().err
