"""Milne-Eddington inversion throughput: fastinv's C++ Levenberg-Marquardt vs
scipy.optimize.least_squares on the same pixels, the same forward model and the same start.

Run (writes JSON with machine info and a markdown summary into bench/results/)::

    python bench/bench_me_inversion.py

Data: Hinode SP-like profiles (Fe I 6301.5 + 6302.5, Hinode's LSF and 112 samples),
synthesised by fastinv's ME model from random parameters over the ME training sets' ranges
(``sampling.ME_RANGES``: B 0-4 kG, isotropic inclination, eta0 log-uniform 1-60, ...; f = 1)
plus 1e-3 I_c Gaussian noise; 9 free parameters, the classical initial guess (fastinv: up to 3
deterministic restarts for pixels left with reduced chi2 > 2; scipy: one start).

- fastinv, 1 thread and all threads: analytic derivatives (me_deriv_kernel.hpp; the float32
  kernel, the default), and 1 thread with the float64 kernel (same pixels, same run).
- scipy.optimize.least_squares (trust-region reflective, bounds, 2-point finite-difference
  Jacobian) on fastinv's C++ forward model: the same model cost per evaluation, so the
  ratio measures the optimiser and the derivatives.
- pyMilne (de la Cruz Rodriguez 2019; C++/Eigen/OpenMP LM with analytic derivatives), built
  from its public source outside this repository (bench/README.md says how) and found through
  ``PYMILNE_DIR`` (default /work/peers/pyMilne); skipped, saying so, when absent. It is given
  the same pixels, 1 thread, float64, one start (nRandom=1) from the same initial guess and
  its default 20 iterations: the classical guess, and the network's (the issue's default start;
  the shipped Hinode SP network, trained with fastinv's line data, applied to these profiles,
  whose line centres differ from it by <= 1.7 mA; both codes get the same guess array). Its
  line data differ from fastinv's (line centres, Lande factors, 6302.5 strength), so the
  pyMilne cases run on their own data set synthesised by fastinv with pyMilne's line data
  (registered as lines here), which both codes fit; pyMilne synthesises on the data's 21.5 mA
  sampling and convolves there with the sampled LSF (FFT), fastinv on its
  fine grid. Both chi2 are the same formula on the same data. One more fastinv case from
  the network guess runs on pyMilne's discretisation (``oversample=1``: one synthesis point
  per data step; not fastinv's default), so that the two engines are also compared on the
  same model grid.

Pixels/s are per core (threads=1) unless marked; pixels per CPU-second are recorded too
(the machine is shared). Median reduced chi2, median iterations and the share of pixels
with status ok come with each case.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from fastinv import _core  # noqa: E402
from fastinv.stokes import ME_FIT_PARAMETERS, Instrument, MEInversion  # noqa: E402
from fastinv.stokes.synthesis.milne_eddington import ME_PARAMETERS  # noqa: E402
from fastinv.stokes.synthesis.sampling import sample_me_parameters  # noqa: E402
from profiles import CpuTimed  # noqa: E402
from summarize import Run, write_markdown  # noqa: E402

N_FAST = 1000
N_SCIPY = 30
NOISE = 1e-3


def _truth(n: int, seed: int = 11) -> np.ndarray:
    """(n, 10) parameters over the ME training sets' ranges (f = 1), B .. filling_factor."""
    p = sample_me_parameters(n, seed, ranges={"filling_factor": (1, 1, "uniform")})
    return np.column_stack([p[k] for k in ME_PARAMETERS[:10]])


@pytest.fixture(scope="module")
def data():
    inv = MEInversion(instrument=Instrument.hinode_sp(), init="classical")  # network start: bench_me_init.py
    truth = _truth(N_FAST)
    clean = inv.model.synthesize({k: truth[:, i] for i, k in enumerate(ME_PARAMETERS[:10])}, add_noise=False)
    ic = truth[:, 7] + truth[:, 8]
    rng = np.random.default_rng(12)
    obs = clean + NOISE * ic[:, None, None] * rng.standard_normal(clean.shape)
    sigma = NOISE * ic
    return inv, obs, sigma


def _record(benchmark, n, timed, chi2, iterations, ok, restarted=None) -> None:
    if benchmark.stats is None:
        return
    benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]
    benchmark.extra_info["pixels"] = n
    benchmark.extra_info["pixels_per_s"] = n / benchmark.stats.stats.mean
    if timed is not None and timed.calls:
        benchmark.extra_info["pixels_per_cpu_s"] = n * timed.calls / timed.cpu
    benchmark.extra_info["median_chi2"] = float(np.nanmedian(chi2))
    benchmark.extra_info["median_iterations"] = float(np.median(iterations))
    benchmark.extra_info["share_ok"] = float(np.mean(ok))
    if restarted is not None:
        benchmark.extra_info["share_restarted"] = float(np.mean(restarted))


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_fastinv_1core(benchmark, data):
    inv, obs, sigma = data
    timed = CpuTimed(inv.invert)
    r = benchmark.pedantic(timed, args=(obs, sigma), kwargs={"threads": 1}, rounds=3, iterations=1)
    _record(benchmark, N_FAST, timed, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)
    benchmark.extra_info["isa"] = _core.stokes.faddeeva_isa()


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_fastinv_1core_float64(benchmark, data):
    """The float64 Jacobian kernel (the default before the float32 one), same pixels and run."""
    inv, obs, sigma = data
    f64 = MEInversion(instrument=Instrument.hinode_sp(), init="classical", precision="float64")
    timed = CpuTimed(f64.invert)
    r = benchmark.pedantic(timed, args=(obs, sigma), kwargs={"threads": 1}, rounds=3, iterations=1)
    _record(benchmark, N_FAST, timed, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_fastinv_all_threads(benchmark, data):
    inv, obs, sigma = data
    r = benchmark.pedantic(inv.invert, args=(obs, sigma), rounds=3, iterations=1)
    _record(benchmark, N_FAST, None, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)
    benchmark.extra_info["threads"] = os.cpu_count()


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_fastinv_same_pixels_as_scipy(benchmark, data):
    inv, obs, sigma = data
    timed = CpuTimed(inv.invert)
    r = benchmark.pedantic(timed, args=(obs[:N_SCIPY], sigma[:N_SCIPY]), kwargs={"threads": 1}, rounds=3)
    _record(benchmark, N_SCIPY, timed, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)


def _scipy_invert(inv: MEInversion, obs: np.ndarray, sigma: np.ndarray):
    from scipy.optimize import least_squares

    free = list(range(9))
    lo = np.array([inv.bounds[k][0] for k in ME_FIT_PARAMETERS])[free]
    hi = np.array([inv.bounds[k][1] for k in ME_FIT_PARAMETERS])[free]
    guess = inv.initial_guess(obs)
    names = ME_PARAMETERS
    chi2, nfev = [], []
    for i in range(obs.shape[0]):
        base = guess[i, : len(names)].copy()

        def residual(x, i=i, base=base):
            q = base.copy()
            q[free] = x
            prof = inv.model._me.synthesize({k: q[j : j + 1] for j, k in enumerate(names)}, 1.0, 1)[0][0]
            return ((obs[i] - prof) / sigma[i]).ravel()

        x0 = np.clip(guess[i, free], lo, hi)
        r = least_squares(residual, x0, bounds=(lo, hi), x_scale="jac")
        chi2.append(2 * r.cost / (obs[i].size - len(free)))
        nfev.append(r.nfev)
    return np.array(chi2), np.array(nfev)


@pytest.mark.benchmark(group="me-inversion-hinode")
def test_scipy_least_squares_1core(benchmark, data):
    pytest.importorskip("scipy")
    inv, obs, sigma = data
    timed = CpuTimed(_scipy_invert)
    chi2, nfev = benchmark.pedantic(timed, args=(inv, obs[:N_SCIPY], sigma[:N_SCIPY]), rounds=1, iterations=1)
    _record(benchmark, N_SCIPY, timed, chi2, nfev, chi2 < 1.5)


# pyMilne's line data (its MilneEddington._initLine): centre [A], j_low, j_up, g_low, g_up, log gf
PYMILNE_LINES = {
    "pyMilne_6301": (6301.4995, 2.0, 2.0, 1.84, 1.50, -0.718),
    "pyMilne_6302": (6302.4931, 1.0, 0.0, 2.49, 0.00, -1.160),
}
PYMILNE_RATIOS = [1.0, 10 ** (-1.160 + 0.718)]  # its eta0 ratio: gf / gf of the first line
N_PYMILNE = 300


def _import_pymilne():
    import importlib
    import sys

    path = os.environ.get("PYMILNE_DIR", "/work/peers/pyMilne")
    if os.path.isdir(path) and path not in sys.path:
        sys.path.insert(0, path)
    try:
        return importlib.import_module("MilneEddington")
    except ImportError as e:
        pytest.skip(f"pyMilne not found in PYMILNE_DIR={path} ({e}); bench/README.md says how to build it")


@pytest.fixture(scope="module")
def pymilne_data():
    """Hinode SP data synthesised with pyMilne's line data, fastinv's inverter for them, and
    pyMilne's classical-guess models (same start for both)."""
    from fastinv.stokes import SpectralLine, register_line
    from fastinv.stokes.synthesis.lines import line_names

    for name, (w, jl, ju, gl, gu, lgf) in PYMILNE_LINES.items():
        if name not in line_names():
            register_line(
                SpectralLine(name, "Fe", 1, 55.845, w, 3.65, lgf, jl, ju, gl, gu, source="pyMilne's line table")
            )
    inv = MEInversion(lines=list(PYMILNE_LINES), instrument=Instrument.hinode_sp(), strength_ratios=PYMILNE_RATIOS)
    truth = _truth(N_PYMILNE, seed=13)
    clean = inv.model.synthesize({k: truth[:, i] for i, k in enumerate(ME_PARAMETERS[:10])}, add_noise=False)
    ic = truth[:, 7] + truth[:, 8]
    rng = np.random.default_rng(14)
    obs = clean + NOISE * ic[:, None, None] * rng.standard_normal(clean.shape)
    return inv, obs, NOISE * ic


@pytest.fixture(scope="module")
def network_guess(pymilne_data):
    """(n, 12) network initial guess for the pyMilne-line data: the shipped Hinode SP network
    (fastinv's line data; no network exists for pyMilne's), the same array for both codes."""
    _, obs, _ = pymilne_data
    net = MEInversion(instrument=Instrument.hinode_sp(), init="network")
    if net.init_method != "network":
        pytest.skip("no shipped Hinode SP ME network")
    return net.initial_guess(obs)


def _pymilne_invert(me, guess, obs_n, sig):
    model_out, syn_out, _ = me.invert(guess, obs_n, sig, nRandom=1, nIter=20, chi2_thres=1.0, mu=1.0)
    return model_out, syn_out


def _pymilne_case(benchmark, pymilne_data, g) -> None:
    """pyMilne from the (n, 12) fastinv guess g, 1 thread, one start, 20 iterations."""
    ME = _import_pymilne()
    inv, obs, sigma = pymilne_data
    wl = inv.wavelength
    step = wl[1] - wl[0]
    x = step * (np.arange(11) - 5)
    psf = np.exp(-0.5 * (x / (0.030 / 2.3548200450309493)) ** 2)
    me = ME.MilneEddington([[wl.astype(np.float64), psf / psf.sum()]], [6301, 6302], nthreads=1, precision="float64")
    # pyMilne's model: B, inc [rad], azi [rad], vlos, vDop [A], eta0, damping, S0, S1 -- per I_c
    ic = sigma / NOISE
    guess = np.column_stack(
        [g[:, 0], np.radians(g[:, 1]), np.radians(g[:, 2]), g[:, 3], g[:, 4] * 1e-3, g[:, 6], g[:, 5]]
        + [g[:, 7] / ic, g[:, 8] / ic]
    )
    guess = np.ascontiguousarray(guess.reshape(1, -1, 9))
    obs_n = np.ascontiguousarray((obs / ic[:, None, None]).reshape(1, -1, 4, wl.size))
    sig = np.full((4, wl.size), NOISE)
    timed = CpuTimed(_pymilne_invert)

    def fresh_round():
        # pyMilne's invert writes its fit into the guess array it is given (a float64
        # (1, n, 9) array is used in place): every round starts from a fresh copy, or the
        # later rounds would start at the previous round's fit
        return (me, guess.copy(), obs_n, sig), {}

    model_out, syn_out = benchmark.pedantic(timed, setup=fresh_round, rounds=3, iterations=1)
    chi2 = (((obs_n[0] - syn_out[0]) / NOISE) ** 2).sum(axis=(1, 2)) / (4 * wl.size - 9)
    _record(benchmark, N_PYMILNE, timed, chi2, np.full(N_PYMILNE, 20), chi2 < 1.5)


@pytest.mark.benchmark(group="me-inversion-pymilne-lines")
def test_pymilne_1core(benchmark, pymilne_data):
    inv, obs, _ = pymilne_data
    _pymilne_case(benchmark, pymilne_data, inv.initial_guess(obs))


@pytest.mark.benchmark(group="me-inversion-pymilne-lines")
def test_pymilne_1core_network(benchmark, pymilne_data, network_guess):
    _pymilne_case(benchmark, pymilne_data, network_guess)


def _fastinv_pymilne_lines(
    restarts: int, lambda_start: float | None = None, oversample: int | None = None
) -> MEInversion:
    return MEInversion(
        lines=list(PYMILNE_LINES),
        instrument=Instrument.hinode_sp(),
        strength_ratios=PYMILNE_RATIOS,
        restarts=restarts,
        init="classical",
        lambda_start=lambda_start,
        oversample=oversample,
    )


@pytest.mark.benchmark(group="me-inversion-pymilne-lines")
@pytest.mark.parametrize("restarts", [0, 3], ids=["one_start", "restarts"])
def test_fastinv_1core_pymilne_lines_network(benchmark, pymilne_data, network_guess, restarts):
    """fastinv from the network guess pyMilne gets (one start, or up to 3 restarts), with the
    initial damping MEInversion uses from its network's guess (given here as an array)."""
    _, obs, sigma = pymilne_data
    timed = CpuTimed(_fastinv_pymilne_lines(restarts, MEInversion.LAMBDA_START["network"]).invert)
    kw = {"threads": 1, "init": network_guess}
    r = benchmark.pedantic(timed, args=(obs, sigma), kwargs=kw, rounds=3, iterations=1)
    _record(benchmark, N_PYMILNE, timed, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)


@pytest.mark.benchmark(group="me-inversion-pymilne-lines")
def test_fastinv_1core_pymilne_lines_network_data_grid(benchmark, pymilne_data, network_guess):
    """pyMilne's discretisation: one synthesis point per data step (``oversample=1``, the
    6e-3 I_c model error of docs/stokes-me-inversion.md "Synthesis grid" that pyMilne's fits
    carry too), one start from the network guess pyMilne gets. Not fastinv's default (2 points
    per step, 3e-5 I_c): it compares the two engines on the same model and data."""
    _, obs, sigma = pymilne_data
    inv = _fastinv_pymilne_lines(0, MEInversion.LAMBDA_START["network"], oversample=1)
    timed = CpuTimed(inv.invert)
    kw = {"threads": 1, "init": network_guess}
    r = benchmark.pedantic(timed, args=(obs, sigma), kwargs=kw, rounds=3, iterations=1)
    _record(benchmark, N_PYMILNE, timed, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)


@pytest.mark.benchmark(group="me-inversion-pymilne-lines")
def test_fastinv_1core_pymilne_lines(benchmark, pymilne_data):
    inv, obs, sigma = pymilne_data
    timed = CpuTimed(inv.invert)
    r = benchmark.pedantic(timed, args=(obs, sigma), kwargs={"threads": 1}, rounds=3, iterations=1)
    _record(benchmark, N_PYMILNE, timed, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)


@pytest.mark.benchmark(group="me-inversion-pymilne-lines")
def test_fastinv_1core_pymilne_lines_one_start(benchmark, pymilne_data):
    inv, obs, sigma = pymilne_data
    timed = CpuTimed(_fastinv_pymilne_lines(0).invert)
    r = benchmark.pedantic(timed, args=(obs, sigma), kwargs={"threads": 1}, rounds=3, iterations=1)
    _record(benchmark, N_PYMILNE, timed, r.chi2[:, 4], r.iterations, r.status == 0, r.restarts > 0)


def write_summary(json_path, md_path) -> str:
    run = Run.load(json_path)

    def get(name, key):
        try:
            return run.extra(name, key)
        except KeyError:
            return float("nan")

    rows = [
        ("fastinv, 1 thread", "test_fastinv_1core"),
        ("fastinv, 1 thread, float64 Jacobian (former default)", "test_fastinv_1core_float64"),
        (f"fastinv, all threads ({os.cpu_count()})", "test_fastinv_all_threads"),
        ("fastinv, 1 thread, the scipy pixels", "test_fastinv_same_pixels_as_scipy"),
        ("scipy least_squares (TRF, FD Jacobian), 1 thread", "test_scipy_least_squares_1core"),
        ("pyMilne line data: fastinv, 1 thread (up to 3 restarts)", "test_fastinv_1core_pymilne_lines"),
        ("pyMilne line data: fastinv, 1 thread, one start", "test_fastinv_1core_pymilne_lines_one_start"),
        ("pyMilne line data: pyMilne, 1 thread, one start, 20 iterations", "test_pymilne_1core"),
        (
            "pyMilne line data, network start: fastinv, 1 thread, one start",
            "test_fastinv_1core_pymilne_lines_network[one_start]",
        ),
        (
            "pyMilne line data, network start: fastinv, 1 thread (up to 3 restarts)",
            "test_fastinv_1core_pymilne_lines_network[restarts]",
        ),
        ("pyMilne line data, network start: pyMilne, 1 thread, one start, 20 iterations", "test_pymilne_1core_network"),
        (
            "pyMilne line data, network start: fastinv on pyMilne's grid (1 synthesis point per data step), one start",
            "test_fastinv_1core_pymilne_lines_network_data_grid",
        ),
    ]
    lines = [
        "# Milne-Eddington inversion benchmark (fastinv LM vs scipy least_squares)",
        "",
        run.machine_line(f"ME kernel ISA {get('test_fastinv_1core', 'isa')}"),
        "- Hinode SP-like data: Fe I 6301.5 + 6302.5, Hinode LSF, 112 samples, 1e-3 I_c noise, 9 free "
        "parameters, classical initial guess unless a row says network start, up to 3 deterministic "
        "restarts where reduced chi2 > 2 (scipy, pyMilne: one start)",
        "",
        "| implementation | pixels | pixels/s (wall) | pixels per CPU-s | median reduced chi2 | "
        "median iterations (scipy: evaluations) | share ok | share restarted |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, name in rows:
        lines.append(
            f"| {label} | {get(name, 'pixels'):.0f} | {get(name, 'pixels_per_s'):,.1f} | "
            f"{get(name, 'pixels_per_cpu_s'):,.1f} | {get(name, 'median_chi2'):.3f} | "
            f"{get(name, 'median_iterations'):.0f} | {get(name, 'share_ok'):.3f} | "
            f"{get(name, 'share_restarted'):.3f} |"
        )
    one, rst, pym = (
        "test_fastinv_1core_pymilne_lines_one_start",
        "test_fastinv_1core_pymilne_lines",
        "test_pymilne_1core",
    )
    one_n, rst_n, pym_n = (
        "test_fastinv_1core_pymilne_lines_network[one_start]",
        "test_fastinv_1core_pymilne_lines_network[restarts]",
        "test_pymilne_1core_network",
    )
    grid_n = "test_fastinv_1core_pymilne_lines_network_data_grid"

    def cpu(name):
        return get(name, "pixels_per_cpu_s")

    if np.isnan(get(pym, "pixels")):
        lines += ["", "pyMilne: not found (case skipped; bench/README.md says how to build it).", ""]
    else:
        lines += [
            "",
            "pyMilne rows: its own data set (same generator, pyMilne's line data); pyMilne's chi2 is the "
            "same formula on its fitted profiles (its model: synthesis on the 21.5 mA data grid + FFT "
            "convolution with the sampled LSF; iterations column: its nIter limit). Per core = pixels "
            "per CPU-second (pyMilne's nthreads=1 still ran OpenMP regions on more than one core here).",
            "",
            f"fastinv float32 / float64 Jacobian kernel, same pixels and run: "
            f"{cpu('test_fastinv_1core') / cpu('test_fastinv_1core_float64'):.2f}x per CPU-second. "
            "pyMilne runs in float64 throughout; fastinv's fit uses the float32 profile+Jacobian "
            "kernel with float64 normal equations, chi2 and final profile (its float64 kernel: the "
            "row above).",
            "",
            f"fastinv / pyMilne, pixels per CPU-second, classical start, one start each: "
            f"{cpu(one) / cpu(pym):.2f}x (with restarts: {cpu(rst) / cpu(pym):.2f}x); median reduced chi2 "
            f"{get(one, 'median_chi2'):.3f} vs {get(pym, 'median_chi2'):.3f}.",
            "",
            f"fastinv / pyMilne, pixels per CPU-second, network start (the issue's default; the same "
            f"guess array for both), one start each: {cpu(one_n) / cpu(pym_n):.2f}x (with restarts: "
            f"{cpu(rst_n) / cpu(pym_n):.2f}x); median reduced chi2 {get(one_n, 'median_chi2'):.3f} vs "
            f"{get(pym_n, 'median_chi2'):.3f}. Network start, fastinv vs pyMilne from the classical "
            f"start: {cpu(one_n) / cpu(pym):.2f}x.",
            "",
            f"Same engines on the same discretisation (fastinv with oversample=1, pyMilne's one "
            f"synthesis point per data step; fastinv's default is two, docs/stokes-me-inversion.md "
            f"'Synthesis grid'), network start, one start each: {cpu(grid_n) / cpu(pym_n):.2f}x; "
            f"median reduced chi2 {get(grid_n, 'median_chi2'):.3f} vs {get(pym_n, 'median_chi2'):.3f}.",
            "",
        ]
    return write_markdown(md_path, lines)


if __name__ == "__main__":
    from run_script import run_and_summarize

    run_and_summarize(__file__, "me_inversion", write_summary)
