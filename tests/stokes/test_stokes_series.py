"""Whole ViSP datasets (``fastinv stokes invert --series``): a dask.distributed LocalCluster of 2
worker processes inverting a dkist-data-simulator ViSP dataset into files bitwise equal to a
serial run and to FrameInverter's results, re-runs that keep valid outputs and redo the others,
an interrupted run resumed from the command line, and a ``dkist.Dataset`` given directly."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

torch = pytest.importorskip("torch")
distributed = pytest.importorskip("distributed")
pytest.importorskip("dkist_data_simulator")

from _stokes_files import fill_visp, simulate_visp, visp_true_counts  # noqa: E402
from _stokes_models import make_card, write_model  # noqa: E402
from fastinv.cli import main  # noqa: E402
from fastinv.stokes import FrameInverter, StokesNet  # noqa: E402
from fastinv.stokes.inversion.network import LEVEL2_NAMES  # noqa: E402
from fastinv.stokes.inversion.series import LOG_NAME, SeriesOptions, assemble_map, map_steps, run_series  # noqa: E402
from fastinv.stokes.io.visp import VispStep, read_visp_step  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")

N_STEPS, N_SLIT, N_WL, IC = 8, 16, 200, 12000.0


@pytest.fixture(scope="module")
def visp_map(tmp_path_factory) -> Path:
    """A simulated 8-step ViSP raster (DINDEX3 from 4) filled with LTE profiles, one in-step
    pixel dark so that statuses differ along the slit."""
    d = tmp_path_factory.mktemp("visp_series") / "VISP_SIM"
    paths = simulate_visp(d, N_STEPS, N_SLIT, n_wl=N_WL)
    true = visp_true_counts(N_STEPS, N_SLIT, IC, seed=5, n_wl=N_WL)
    true[2, :, :, 3] = 0.0  # no signal: status 2
    fill_visp(paths, true, dindex3_base=4, dindex4_base=1, keep_stokes_key=False)
    return d


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("model") / "visp.safetensors"
    write_model(path, card=make_card(instrument="visp"), seed=12)
    return str(path)


def _content(path: Path) -> list:
    """Header cards and data bytes of every HDU, without CHECKSUM/DATASUM (their comments
    hold the time of writing)."""
    with fits.open(path) as hdul:
        return [
            (
                [c.image for c in h.header.cards if c.keyword not in ("CHECKSUM", "DATASUM")],
                b"" if h.data is None else h.data.tobytes(),
            )
            for h in hdul
        ]


@pytest.fixture(scope="module")
def serial(visp_map, model, tmp_path_factory) -> tuple[Path, dict]:
    """A serial run (one step at a time, one thread, in this process): its folder and
    {file name: content}."""
    out = tmp_path_factory.mktemp("serial")
    log = run_series(visp_map, out, SeriesOptions(model=model), scheduler="threads:1", progress=False)
    assert log["counts"] == {"done": N_STEPS} and log["complete"]
    return out, {p.name: _content(p) for p in sorted(out.glob("*.fits"))}


def _assert_equal_to_serial(out: Path, serial: tuple) -> None:
    got = {p.name: p for p in out.glob("*.fits")}
    want = serial[1]
    assert sorted(got) == sorted(want) and len(got) == N_STEPS
    for name, content in want.items():
        assert _content(got[name]) == content, f"{name} differs from the serial run"


def test_steps_hold_frame_inverter_results(visp_map, model, serial):
    """Each step's file holds FrameInverter's results on that step's frame, bit for bit, with
    the step's inputs, model checksum and continuum mode in its header."""
    ((name, steps),) = map_steps(visp_map)
    assert name == "VISP_SIM" and [n for n, _ in steps] == list(range(4, 4 + N_STEPS))
    net = StokesNet.load(model, instrument="visp")
    inv = FrameInverter(net, "visp", threads=1)
    for n, paths in steps:
        ref = inv.invert_frame(read_visp_step(VispStep(n, paths)))
        with fits.open(serial[0] / f"VISP_SIM_step_{n:05d}.fits") as hdul:
            for q, v in ref.results.items():
                assert np.array_equal(hdul[LEVEL2_NAMES.get(q, q)].data[:, :, 0], v, equal_nan=True)
            assert np.array_equal(hdul["status"].data[:, 0], ref.status)
            h = hdul[0].header
            assert h["DINDEX3"] == n and h["FI_CMODE"] == "frame" and h["ICONT"] == ref.continuum
            assert [str(c).split(": ")[1] for c in h["HISTORY"]] == [Path(p).name for p in paths]
            assert all(hdu.verify_checksum() == 1 for hdu in hdul)
    assert set(np.unique(fits.getdata(serial[0] / "VISP_SIM_step_00006.fits", "status"))) == {0, 2}


def test_local_cluster_equals_serial_and_resumes(visp_map, model, serial, tmp_path):
    out = tmp_path / "out"
    opts = SeriesOptions(model=model)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl:
        with distributed.Client(cl) as client:
            log = run_series(visp_map, out, opts, client=client, progress=False)
            assert log["counts"] == {"done": N_STEPS} and log["complete"]
            assert len({e["worker"] for e in log["steps"].values()}) == 2  # both processes worked
            _assert_equal_to_serial(out, serial)
            # a re-run keeps valid outputs, redoes a truncated one, one with a flipped bit and
            # one written with another continuum
            files = sorted(out.glob("*.fits"))
            files[1].write_bytes(files[1].read_bytes()[:-2880])
            flipped = bytearray(files[2].read_bytes())
            flipped[-2880 + 5] ^= 1  # a bit of the last HDU's data (the status)
            files[2].write_bytes(bytes(flipped))
            other = tmp_path / "other"
            run_series(visp_map, other, SeriesOptions(model=model, continuum=IC), client=client, progress=False)
            files[3].write_bytes((other / files[3].name).read_bytes())
            log = run_series(visp_map, out, opts, client=client, progress=False)
            assert log["counts"] == {"done": 3, "skipped": N_STEPS - 3}
            redone = [log["steps"][f.stem]["redone"] for f in files[1:4]]
            assert "cannot be read" in redone[0] and "checksum" in redone[1] and "--continuum" in redone[2]
            _assert_equal_to_serial(out, serial)
            assert json.loads((out / LOG_NAME).read_text()) == log
            # another model: every output is redone
            other_model = tmp_path / "m2.safetensors"
            write_model(other_model, card=make_card(instrument="visp"), seed=13)
            log = run_series(visp_map, out, SeriesOptions(model=str(other_model)), client=client, progress=False)
            assert log["counts"] == {"done": N_STEPS}
            assert all(e["redone"].endswith("another model") for e in log["steps"].values())


def test_killed_worker_run_completes(visp_map, model, serial, tmp_path):
    """A worker process SIGKILLed mid-run: Dask re-runs its steps on the other one, no output
    is partial, the log names the lost worker, the files equal the serial run's."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl:
        with distributed.Client(cl) as client:
            pids = client.run(os.getpid)
            killed = []

            def kill_one(name, entry):
                if not killed:
                    addr = next(a for a in pids if a != entry["worker"])
                    os.kill(pids[addr], signal.SIGKILL)
                    killed.append(addr)

            out = tmp_path / "out"
            log = run_series(
                visp_map, out, SeriesOptions(model=model), client=client, progress=False, on_result=kill_one
            )
    counts = log["counts"]
    assert killed and log["workers_gone"] == killed and log["complete"]
    # a step the killed worker wrote but did not report is re-run and finds its file valid
    assert set(counts) <= {"done", "skipped"} and counts.get("skipped", 0) <= 1 and sum(counts.values()) == N_STEPS
    assert not list(out.glob(".*"))  # no temporaries left
    _assert_equal_to_serial(out, serial)


def test_interrupted_run_resumes_from_the_cli(visp_map, model, serial, tmp_path, capsys):
    """Ctrl-C after the third finished step: the log says how far it got, the outputs present
    are complete, and the command run again does the rest, equal to an uninterrupted run."""
    out = tmp_path / "out"
    seen = []

    def interrupt(name, entry):
        seen.append(name)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_series(
            visp_map, out, SeriesOptions(model=model), scheduler="threads:1", progress=False, on_result=interrupt
        )
    log = json.loads((out / LOG_NAME).read_text())
    assert not log["complete"] and log["counts"]["done"] == 3 and log["counts"]["pending"] == N_STEPS - 3
    written = {p.name for p in out.glob("*.fits")}
    assert 3 <= len(written) < N_STEPS  # a step still running at the interrupt may have finished
    argv = ["stokes", "invert", "--series", str(visp_map), "--instrument", "visp", "-o", str(out)]
    assert main(argv + ["--model", model, "-q", "--scheduler", "processes:2", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    log = json.loads((out / LOG_NAME).read_text())
    assert log["complete"] and log["counts"] == {"skipped": len(written), "done": N_STEPS - len(written)}
    assert f"{N_STEPS} steps: done {N_STEPS - len(written)}, failed 0, skipped {len(written)}" in printed
    assert "dask dashboard: http" in printed  # a process scheduler has a dashboard
    _assert_equal_to_serial(out, serial)


def test_cli_series_errors(visp_map, model, tmp_path, capsys):
    base = ["stokes", "invert", "--series", str(visp_map), "-o", str(tmp_path / "o")]
    assert main(base + ["--instrument", "hinode"]) == 1
    assert "--series inverts DKIST ViSP datasets" in capsys.readouterr().err
    assert main(base + ["--instrument", "visp", "--scheduler", "gpus:2"]) == 1
    assert "threads[:N], processes[:N]" in capsys.readouterr().err
    assert main(base[:3] + [str(tmp_path / "nothing*"), "-o", str(tmp_path / "o"), "--instrument", "visp"]) == 1
    assert "no file matches it" in capsys.readouterr().err


def test_dkist_dataset_and_tiles(tmp_path):
    """A dkist.Dataset given directly (steps from its header table) and as the tile of a
    TiledDataset: with one --continuum, the steps put side by side are the map the
    single-map command writes, bit for bit."""
    dkist = pytest.importorskip("dkist")
    from _stokes_files import write_large_visp
    from astropy.wcs import WCS
    from dkist import TiledDataset

    asdf, ds, data = write_large_visp(tmp_path)
    wl = 5000.0 + (np.arange(50) + 1 - 25) * 0.1
    write_model(tmp_path / "m.safetensors", card=make_card(instrument="visp", wavelength=wl[5:45] + 0.03), seed=3)
    model = str(tmp_path / "m.safetensors")
    one = ["stokes", "invert", str(asdf), "--instrument", "visp", "--model", model, "--continuum", "1000", "-q"]
    assert main(one + ["-o", str(tmp_path / "map.fits")]) == 0
    opts = SeriesOptions(model=model, continuum=1000.0)
    log = run_series(ds, tmp_path / "l2", opts, progress=False)
    name = ds.inventory["datasetId"]
    assert log["counts"] == {"done": 20} and log["maps"] == {name: 20}
    with fits.open(tmp_path / "map.fits") as ref:
        for q in ("temperature", "velocity", "mag_strength", "status"):
            cols = [fits.getdata(tmp_path / "l2" / f"{name}_step_{n:05d}.fits", q) for n in range(20)]
            assert np.array_equal(np.concatenate(cols, axis=-1), ref[q].data, equal_nan=True), q
    # the steps assembled into one map (FITS and dkist ASDF) are the single-map command's map,
    # with its celestial WCS, also through the command line
    argv = ["stokes", "invert", "--series", str(asdf), "--instrument", "visp", "-o", str(tmp_path / "l2")]
    assert main(argv + ["--model", model, "--continuum", "1000", "-q", "--maps"]) == 0
    with fits.open(tmp_path / "map.fits") as ref, fits.open(tmp_path / "l2" / "large_visp.fits") as got:
        for h in ref[1:]:
            assert np.array_equal(got[h.name].data, h.data, equal_nan=True), h.name
        w_ref, w_got = WCS(ref["temperature"].header).celestial, WCS(got["temperature"].header).celestial
        assert np.allclose(w_got.pixel_to_world_values(19, 100), w_ref.pixel_to_world_values(19, 100), atol=1e-9)
        assert got[0].header["NFRAMES"] == 20 and got[0].header["ICONT"] == 1000.0
    with pytest.warns(Warning, match="failed to convert"):  # no profiles: see dkist_asdf
        inv = dkist.load_dataset(tmp_path / "l2" / "large_visp.asdf")
    assert np.array_equal(np.asarray(inv["temperature"].data), fits.getdata(tmp_path / "map.fits", "temperature"))
    # a failed step is a NaN column with status 3
    log = json.loads((tmp_path / "l2" / LOG_NAME).read_text())
    log["steps"]["large_visp_step_00003"]["status"] = "failed"
    (tmp_path / "l2" / LOG_NAME).write_text(json.dumps(log))
    out = assemble_map(tmp_path / "l2", "large_visp", tmp_path / "holed.fits")
    assert (fits.getdata(out, "status")[:, 3] == 3).all() and np.isnan(fits.getdata(out, "temperature")[:, :, 3]).all()
    with pytest.raises(FileExistsError):
        assemble_map(tmp_path / "l2", "large_visp", tmp_path / "holed.fits")
    with pytest.raises(ValueError, match="no map 'nothing'"):
        assemble_map(tmp_path / "l2", "nothing", tmp_path / "x.fits")
    tiled = TiledDataset(np.array([ds], dtype=object), meta={"inventory": ds.inventory})
    ((tile, steps),) = map_steps(tiled)
    assert tile == f"{name}_tile000" and [n for n, _ in steps] == list(range(20))
    want = sorted((int(r["DINDEX4"]), f) for f, r in zip(ds.files.filenames, ds.headers) if int(r["DINDEX3"]) == 7)
    assert steps[7][1] == [str(tmp_path / f) for _, f in want]
