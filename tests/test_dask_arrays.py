"""Dask arrays in, dask arrays out: BasisPursuit.solve, DeepEM.invert and StokesNet.predict run
blockwise over pixels (fastinv._dask) and compute bitwise what one NumPy call gives, on the
threaded and on the multi-process scheduler (where the solvers travel as recipes)."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
from fastinv import _dask, datasets
from fastinv.dem import BasisPursuit, DeepEM
from fastinv.dem.deepem import shipped_model_path
from fastinv.dem.io import read_aia

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")

BP_FIELDS = ("em", "coeffs", "status", "tolfac", "objective", "model", "chi2", "iterations")
MC_FIELDS = ("em_err", "logt_err", "total_em_err", "mc_feasible")


@pytest.fixture(scope="module")
def flare():
    return read_aia(datasets.aia_flare_files())


def _assert_same(got: dict, ref: dict) -> None:
    for name, want in ref.items():
        have = got[name]
        assert isinstance(have, np.ndarray), name
        assert have.dtype == want.dtype and have.shape == want.shape, name
        assert np.array_equal(have, want, equal_nan=True), name


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_basis_pursuit_dask_equals_numpy(flare, scheduler):
    bp = BasisPursuit()
    ref = bp.solve(flare.data, exptime=flare.exptime, n_samples=4, seed=5)
    # chunked one channel per chunk (as a stack of files would be), blocks of 1024 pixels:
    # rechunked to whole pixels; the Monte-Carlo draws follow each block's first pixel
    y = da.from_array(flare.data, chunks=(1, 16, 67))
    with dask.config.set({"fastinv.pixels_per_task": 1000}):
        res = bp.solve(y, exptime=flare.exptime, n_samples=4, seed=5)
    names = BP_FIELDS + MC_FIELDS
    assert all(_dask.is_dask_array(getattr(res, n)) for n in names)
    assert res.em.numblocks[-2] * res.em.numblocks[-1] > 1 and res.mc_samples == 4 and res.mc_seed == 5
    got = dask.compute(*[getattr(res, n) for n in names], scheduler=scheduler)
    _assert_same(dict(zip(names, got)), {n: getattr(ref, n) for n in names})


def test_basis_pursuit_dask_sigma_and_first_pixel(flare):
    bp = BasisPursuit()
    sigma = bp.sigma(np.maximum(flare.data, 0), flare.exptime) * 1.1
    ref = bp.solve(flare.data[:, 10:30], sigma[:, 10:30], n_samples=3, seed=2, first_pixel=10 * 67)
    res = bp.solve(
        da.from_array(flare.data[:, 10:30], chunks=(6, 7, 67)),
        da.from_array(sigma[:, 10:30]),
        n_samples=3,
        seed=2,
        first_pixel=10 * 67,
    )
    got = dask.compute(*[getattr(res, n) for n in BP_FIELDS + MC_FIELDS], scheduler="threads")
    _assert_same(dict(zip(BP_FIELDS + MC_FIELDS, got)), {n: getattr(ref, n) for n in BP_FIELDS + MC_FIELDS})
    with pytest.raises(ValueError, match="sigma .* or exptime"):
        bp.solve(da.from_array(flare.data))


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_deepem_dask_equals_numpy(flare, scheduler):
    net = DeepEM.load()
    ref = net.invert(flare.data, exptime=flare.exptime, n_sample=flare.n_sample)
    y = da.from_array(flare.data, chunks=(6, 20, 67))
    with dask.config.set({"fastinv.pixels_per_task": 700}):
        res = net.invert(y, exptime=flare.exptime, n_sample=flare.n_sample)
    got = dask.compute(*[getattr(res, n) for n in BP_FIELDS], scheduler=scheduler)
    _assert_same(dict(zip(BP_FIELDS, got)), {n: getattr(ref, n) for n in BP_FIELDS})
    with pytest.raises(ValueError, match="out= is for NumPy"):
        net.invert(y, out=ref)


@pytest.mark.parametrize("scheduler", ["threads", "processes"])
def test_stokesnet_dask_equals_numpy(scheduler):
    from fastinv.stokes import StokesNet

    net = StokesNet.load()
    rng = np.random.default_rng(1)
    n, nwl = 900, net.wavelength.size
    x = np.zeros((n, 4, nwl))
    x[:, 0] = 1 - 0.5 * rng.random((n, 1)) * np.exp(-(np.linspace(-3, 3, nwl) ** 2))
    x[:, 1:] = 0.01 * rng.standard_normal((n, 3, nwl))
    x[5, 2, 3] = np.nan  # a bad profile: NaN results, status 1
    ref, status = net.predict(x, return_status=True)
    with dask.config.set({"fastinv.pixels_per_task": 300}):
        res, st = net.predict(da.from_array(x, chunks=(100, 4, nwl)), return_status=True)
    got, got_st = dask.compute(res, st, scheduler=scheduler)
    _assert_same(got, {k: v.value for k, v in ref.items()})
    _assert_same({"status": got_st}, {"status": status})
    assert set(got) == set(net.units)


def test_solvers_unpickle_to_one_cached_instance_per_process(tmp_path):
    bp = BasisPursuit(widths=(0.1, 0.3))
    a, b = pickle.loads(pickle.dumps(bp)), pickle.loads(pickle.dumps(bp))
    assert a is b and a.widths == (0.1, 0.3) and np.array_equal(a.dictionary, bp.dictionary)
    assert pickle.loads(pickle.dumps(BasisPursuit(widths=(0.2,)))) is not a
    assert len(pickle.dumps(DeepEM.load())) < 1000  # the recipe, not the weights
    # a model file changed between making and running a task is refused
    path = tmp_path / "deepem.safetensors"
    shutil.copy(shipped_model_path(), path)
    blob = pickle.dumps(DeepEM.load(path))
    with open(path, "ab") as f:
        f.write(b" ")
    with pytest.raises(ValueError, match="changed since the task was made"):
        pickle.loads(blob)


def test_local_cluster_of_two_processes(flare):
    """The three methods on a dask.distributed LocalCluster: bitwise the NumPy results, and each
    worker process builds each solver once (the cache), however many tasks it runs."""
    distributed = pytest.importorskip("distributed")
    from fastinv.stokes import StokesNet

    bp, net, snet = BasisPursuit(), DeepEM.load(), StokesNet.load()
    x = np.zeros((500, 4, snet.wavelength.size))
    x[:, 0] = 1 - 0.4 * np.exp(-(np.linspace(-3, 3, x.shape[2]) ** 2)) * np.linspace(0.5, 1, 500)[:, None]
    ref_bp = bp.solve(flare.data, exptime=flare.exptime)
    ref_dem = net.invert(flare.data, exptime=flare.exptime)
    ref_st = snet.predict(x)
    with dask.config.set({"fastinv.pixels_per_task": 512}):
        lazy = (
            bp.solve(da.from_array(flare.data), exptime=flare.exptime).em,
            net.invert(da.from_array(flare.data), exptime=flare.exptime).em,
            snet.predict(da.from_array(x, chunks=(100, 4, x.shape[2])))["temperature"],
        )
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cl:
        with distributed.Client(cl) as client:
            got = client.compute(lazy, sync=True)
            built = client.run(lambda: sorted(k[0] for k in __import__("fastinv._dask")._dask._CACHE))
    assert np.array_equal(got[0], ref_bp.em) and np.array_equal(got[1], ref_dem.em)
    assert np.array_equal(got[2], ref_st["temperature"].value, equal_nan=True)
    assert all(names == sorted(set(names)) for names in built.values())  # one of each per process
    assert any(names for names in built.values())
