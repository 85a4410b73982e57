"""Milne-Eddington inversion: fastinv's C++ Levenberg-Marquardt beside CuSP (PyPI ``cusp``) on
the CPU build of PyTorch, same pixels, one thread each.

Run (writes JSON with machine info and a markdown summary into bench/results/)::

    pip install cusp            # the peer; the CuSP cases are skipped, saying so, without it
    python bench/bench_me_cusp.py

CuSP (Chen Guoyin, "Cuda-supported SpectroPolarimetry", v0.1.0) inverts a batch of pixels at
once in PyTorch: generalised simulated annealing (``DualAnnealing``) over 8 normalised ME
parameters, each annealing step followed by an Adam local search on autograd gradients. Its
forward model is a single line in the effective-triplet approximation (``landeG``), Voigt and
Faraday-Voigt profiles by trapezoidal quadrature (1000 and 100 nodes), no instrument profile, no
filling factor, and profiles divided by the continuum computed at a far-wing wavelength.

So the data here are what both models describe exactly: fastinv's ME synthesis of Fe I 6302.5
alone (J 1 -> 0, a normal triplet with g_eff = 2.5) on 56 samples of 21.5 mA, no LSF, S0 + S1 = 1
(disc-centre continuum 1), parameters inside CuSP's search box (damping 0.4-0.6, S1/S0 0.1-10,
B 5-4000 G), plus 1e-3 I_c Gaussian noise. Each code fits with its own model; the reduced chi2 of
each fit (sigma 1e-3, 4 x 56 points less the free parameters) is computed here by the same
formula. fastinv: classical initial guess, 9 free parameters. CuSP: its random start (seeded
here), ``max_iter`` annealing steps (3 on 20 pixels, 30 on 4; its own default is 1000,
which took 10 minutes for 100 pixels of 7 samples on a GPU in its example notebook and would take
hours on this CPU, so it is not run).

The two codes differ in two conventions, not in physics: CuSP's Stokes V has the opposite sign
and its azimuth is fastinv's + 90 deg. CuSP is therefore handed the data with V negated (its fit
negated back), and ``test_cusp_model_agrees`` checks, before anything is timed, that CuSP's
forward model at the true parameters (so converted) reproduces the noiseless data to 3e-4 I_c.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fastinv.stokes import MEInversion  # noqa: E402
from fastinv.stokes.synthesis.milne_eddington import ME_PARAMETERS  # noqa: E402
from fastinv.stokes.synthesis.sampling import sample_me_parameters  # noqa: E402
from profiles import CpuTimed  # noqa: E402
from summarize import Run, write_markdown  # noqa: E402

N_PIXELS = 20
N_FASTINV = 1000
NOISE = 1e-3
CENTRE = 6302.4936  # A, fastinv's FeI_6302
WAVELENGTH = CENTRE + 21.5e-3 * (np.arange(56) - 27.5)
WING_NM = (CENTRE - 10.0) / 10  # CuSP's continuum point: 10 A from the line
CUSP_CASES = ((N_PIXELS, 3), (4, 30))  # (pixels, annealing steps): its default 1000 is not run
CUSP_SEARCH_BOX = {
    "B": (5.0, 4000.0, "uniform"),
    "damping": (0.4, 0.6, "uniform"),
    "S0": (0.1, 0.5, "uniform"),
    "filling_factor": (1.0, 1.0, "uniform"),
}


def _reduced_chi2(obs: np.ndarray, fit: np.ndarray, n_free: int) -> np.ndarray:
    return (((obs - fit) / NOISE) ** 2).sum(axis=(1, 2)) / (obs[0].size - n_free)


@pytest.fixture(scope="module")
def data():
    inv = MEInversion(lines=["FeI_6302"], wavelength=WAVELENGTH, init="classical")
    p = sample_me_parameters(N_FASTINV, 21, ranges=CUSP_SEARCH_BOX)
    clean = inv.model.synthesize({k: p[k] for k in ME_PARAMETERS[:10]}, add_noise=False)
    obs = clean + NOISE * np.random.default_rng(22).standard_normal(clean.shape)
    return inv, obs


def _record(benchmark, n: int, timed: CpuTimed, chi2: np.ndarray, **extra) -> None:
    if benchmark.stats is None:
        return
    benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]
    benchmark.extra_info["pixels"] = n
    benchmark.extra_info["pixels_per_s"] = n / benchmark.stats.stats.mean
    benchmark.extra_info["pixels_per_cpu_s"] = n * timed.calls / timed.cpu
    benchmark.extra_info["median_chi2"] = float(np.median(chi2))
    benchmark.extra_info["share_chi2_below_2"] = float(np.mean(chi2 < 2))
    benchmark.extra_info.update(extra)


@pytest.mark.benchmark(group="me-cusp")
def test_fastinv_1core(benchmark, data):
    inv, obs = data
    timed = CpuTimed(inv.invert)
    r = benchmark.pedantic(timed, args=(obs, NOISE), kwargs={"threads": 1}, rounds=3, iterations=1)
    _record(benchmark, N_FASTINV, timed, r.chi2[:, 4], median_iterations=float(np.median(r.iterations)))


@pytest.mark.benchmark(group="me-cusp")
def test_fastinv_1core_cusp_pixels(benchmark, data):
    inv, obs = data
    timed = CpuTimed(inv.invert)
    r = benchmark.pedantic(timed, args=(obs[:N_PIXELS], NOISE), kwargs={"threads": 1}, rounds=3, iterations=1)
    _record(benchmark, N_PIXELS, timed, r.chi2[:, 4], median_iterations=float(np.median(r.iterations)))


def _cusp_forward(params):
    import torch
    from CuSP import MEForward

    forward = MEForward(
        torch.from_numpy(WAVELENGTH / 10).to(params.dtype), lambda0=CENTRE / 10, landeG=2.5, wing=WING_NM
    )
    with torch.no_grad():
        fit = torch.stack(list(forward(*params.detach().T[:, :, None])), dim=1).double().numpy()
    fit[:, 3] *= -1  # CuSP's V sign convention -> fastinv's
    return fit


def _cusp_invert(obs: np.ndarray, steps: int):
    import torch
    from CuSP import MEInversion as CuspInversion

    torch.manual_seed(0)  # CuSP draws its start and its annealing moves from torch's generator
    inversion = CuspInversion(torch.from_numpy(WAVELENGTH / 10).float(), lambda0=CENTRE / 10, landeG=2.5, wing=WING_NM)
    theirs = obs.copy()
    theirs[:, 3] *= -1
    return _cusp_forward(inversion(torch.from_numpy(theirs).float(), max_iter=steps))


def test_cusp_model_agrees():
    """CuSP's forward model at the true parameters (its units and conventions) reproduces
    fastinv's noiseless profiles: the comparison below is between two fits of the same model."""
    pytest.importorskip("CuSP", reason="CuSP not installed (pip install cusp)")
    import torch

    inv = MEInversion(lines=["FeI_6302"], wavelength=WAVELENGTH)
    p = sample_me_parameters(50, 23, ranges=CUSP_SEARCH_BOX)
    clean = inv.model.synthesize({k: p[k] for k in ME_PARAMETERS[:10]}, add_noise=False)
    theirs = np.column_stack(
        [
            p["doppler_width"] * 1e-4,  # mA -> nm
            p["vlos"] * 1e3,  # km/s -> m/s
            p["eta0"],
            (1 - p["S0"]) / p["S0"],  # S1/S0
            p["damping"],
            p["B"],
            np.radians(p["inclination"]),
            np.radians(p["azimuth"] + 90),
        ]
    )
    assert np.abs(_cusp_forward(torch.from_numpy(theirs)) - clean).max() < 3e-4


@pytest.mark.benchmark(group="me-cusp")
@pytest.mark.parametrize(("pixels", "steps"), CUSP_CASES)
def test_cusp_1core(benchmark, data, pixels, steps):
    pytest.importorskip("CuSP", reason="CuSP not installed (pip install cusp)")
    import torch

    torch.set_num_threads(1)
    _, obs = data
    timed = CpuTimed(_cusp_invert)
    fit = benchmark.pedantic(timed, args=(obs[:pixels], steps), rounds=1, iterations=1)
    _record(benchmark, pixels, timed, _reduced_chi2(obs[:pixels], fit, 8), annealing_steps=steps)


def write_summary(json_path, md_path) -> str:
    run = Run.load(json_path)
    rows = [
        ("fastinv LM, classical start, 1 thread", "test_fastinv_1core"),
        ("fastinv LM, the CuSP pixels, 1 thread", "test_fastinv_1core_cusp_pixels"),
    ] + [
        (f"CuSP (torch CPU), {steps} annealing steps, 1 thread", f"test_cusp_1core[{pixels}-{steps}]")
        for pixels, steps in CUSP_CASES
    ]
    lines = [
        "# Milne-Eddington inversion: fastinv beside CuSP on the CPU (bench/bench_me_cusp.py)",
        "",
        run.machine_line(),
        "- data: Fe I 6302.5 alone, 56 samples of 21.5 mA, no LSF, 1e-3 I_c noise, parameters inside "
        "CuSP's search box (the module docstring says why); each code fits with its own model, the "
        "reduced chi2 is the same formula on each fit",
        "",
        "| implementation | pixels | pixels/s (wall) | pixels per CPU-s | median reduced chi2 | share chi2 < 2 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, name in rows:
        lines.append(
            f"| {label} | {run.extra(name, 'pixels'):.0f} | {run.extra(name, 'pixels_per_s'):,.2f} | "
            f"{run.extra(name, 'pixels_per_cpu_s'):,.2f} | {run.extra(name, 'median_chi2'):.3f} | "
            f"{run.extra(name, 'share_chi2_below_2'):.2f} |"
        )
    pixels, steps = CUSP_CASES[0]
    cusp = run.extra(f"test_cusp_1core[{pixels}-{steps}]", "pixels_per_cpu_s")
    if np.isnan(cusp):
        lines += ["", "CuSP: not installed (case skipped; `pip install cusp`)."]
    else:
        ratio = run.extra("test_fastinv_1core_cusp_pixels", "pixels_per_cpu_s") / cusp
        lines += [
            "",
            f"fastinv / CuSP, pixels per CPU-second on the same {pixels} pixels: {ratio:,.0f}x, with CuSP "
            f"cut to {steps} of its default 1000 annealing steps (its chi2 shows it has not converged). "
            "CuSP is built for a GPU: a batch of pixels per tensor operation, a global search instead of "
            "a local fit from a guess.",
        ]
    return write_markdown(md_path, lines)


if __name__ == "__main__":
    from run_script import run_and_summarize

    run_and_summarize(__file__, "me_cusp", write_summary)
