"""Series runs (``fastinv dem bp|deepem --series``): grouping by T_OBS, a dask.distributed
LocalCluster of 2 worker processes giving files bitwise equal to serial single runs, a worker
killed mid-run, and a CLI run killed mid-series then resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from fastinv import datasets
from fastinv._series import Step, run_steps
from fastinv.cli import main
from fastinv.dem.pipelines import run_bp, run_deepem
from fastinv.dem.series import LOG_NAME, SeriesOptions, group_steps, run_series

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory) -> Path:
    """The ten flare time steps (60 files, 67x67) in one folder."""
    try:
        files = [p for s in datasets.aia_flare_slots() for p in datasets.aia_flare_files(s)]
    except OSError as exc:
        pytest.skip(f"flare series not available: {exc}")
    d = tmp_path_factory.mktemp("aia")
    for p in files:
        shutil.copy(p, d / p.name)
    return d


@pytest.fixture(scope="module")
def serial(series_dir, tmp_path_factory) -> dict:
    """Serial single runs of every step: {(method, step name): content of the output file}."""
    steps, _ = group_steps(sorted(series_dir.glob("*.fits")))
    out = tmp_path_factory.mktemp("serial")
    ref = {}
    for name, files in steps:
        run_bp(files, out / f"bp_{name}.fits", progress=False)
        run_deepem(files, out / f"deepem_{name}.fits")
        ref["bp", name] = _content(out / f"bp_{name}.fits")
        ref["deepem", name] = _content(out / f"deepem_{name}.fits")
    return ref


def _content(path: Path) -> list:
    """Every HDU's header cards and data bytes, without CHECKSUM/DATASUM (their comments hold
    the time of writing)."""
    with fits.open(path) as hdul:
        return [
            ([c.image for c in h.header.cards if c.keyword not in ("CHECKSUM", "DATASUM")], h.data.tobytes())
            for h in hdul
        ]


def _assert_equal_to_serial(out: Path, method: str, serial: dict) -> None:
    got = {p.stem.rsplit("_", 1)[-1]: p for p in out.glob(f"dem_{method}_*.fits")}
    want = {name: b for (m, name), b in serial.items() if m == method}
    assert sorted(got) == sorted(want) and len(got) == 10
    for name in want:
        assert _content(got[name]) == want[name], f"{method} step {name} differs from the serial run"


def test_group_steps(series_dir, tmp_path):
    steps, incomplete = group_steps(sorted(series_dir.glob("*.fits")))
    assert len(steps) == 10 and not incomplete
    assert steps[0][0] == "20110215T014402"  # the step's earliest T_OBS (211 A)
    assert [int(Path(p).name[-8:-5]) for p in steps[0][1]] == [94, 131, 171, 193, 211, 335]
    files = [p for p in sorted(series_dir.glob("*.fits")) if "01-50-11_131" not in p.name]
    steps, incomplete = group_steps(files)
    assert len(steps) == 9 and [(i["name"], i["missing"]) for i in incomplete] == [("20110215T015002", [131])]
    files = [p for p in sorted(series_dir.glob("*.fits")) if "01-52-14_171" not in p.name]
    steps, incomplete = group_steps(files)
    assert len(steps) == 9 and incomplete[0]["name"] == "unmatched" and len(incomplete[0]["files"]) == 5
    # a tolerance over the 2-min cadence: still each file in one step, nearest first
    assert group_steps(sorted(series_dir.glob("*.fits")), tolerance=300.0) == group_steps(
        sorted(series_dir.glob("*.fits"))
    )
    bad = tmp_path / "not_aia.fits"
    fits.PrimaryHDU(np.zeros((2, 2))).writeto(bad)
    with pytest.raises(ValueError, match="not_aia.fits: no 2-d image with a WAVELNTH"):
        group_steps([bad])
    bad.write_bytes(b"SIMPLE  =                    T" + b" " * 2850)
    with pytest.raises(OSError, match="not_aia.fits: truncated FITS file"):
        group_steps([bad])


def test_local_cluster_equals_serial_and_resumes(series_dir, serial, tmp_path):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl:
        with distributed.Client(cl) as client:
            for method in ("bp", "deepem"):
                out = tmp_path / method
                log = run_series(str(series_dir / "*.fits"), out, SeriesOptions(method), client=client, progress=False)
                assert log["counts"] == {"done": 10} and log["complete"]
                assert len({e["worker"] for e in log["steps"].values()}) == 2  # both processes worked
                _assert_equal_to_serial(out, method, serial)
            # a re-run skips valid outputs and redoes a damaged one and one written otherwise
            out = tmp_path / "bp"
            files = sorted(out.glob("*.fits"))
            files[3].write_bytes(files[3].read_bytes()[:-2880])  # truncated
            flipped = bytearray(files[4].read_bytes())
            flipped[-2880 + 8] ^= 1  # one bit of the last HDU's data (the log T grid)
            files[4].write_bytes(bytes(flipped))
            run_bp(
                log["steps"][files[5].stem[-15:]]["inputs"], files[5], bin=2, progress=False, overwrite=True
            )  # other options
            log = run_series(str(series_dir / "*.fits"), out, SeriesOptions("bp"), client=client, progress=False)
            assert log["counts"] == {"done": 3, "skipped": 7}
            redone = [log["steps"][f.stem[-15:]]["redone"] for f in files[3:6]]
            assert "cannot be read" in redone[0] and "checksum" in redone[1] and "--bin" in redone[2]
            _assert_equal_to_serial(out, "bp", serial)
            assert json.loads((out / LOG_NAME).read_text()) == log


def test_killed_worker_run_completes(series_dir, serial, tmp_path):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cl:
        with distributed.Client(cl) as client:
            pids = client.run(os.getpid)
            killed = []

            def kill_one(name, entry):
                if not killed:  # a worker dies while the other steps are queued or running
                    addr = next(a for a in pids if a != entry["worker"])
                    os.kill(pids[addr], signal.SIGKILL)
                    killed.append(addr)

            out = tmp_path / "bp"
            log = run_series(
                str(series_dir / "*.fits"), out, SeriesOptions("bp"), client=client, progress=False, on_result=kill_one
            )
    # a step the killed worker had written but not yet reported is re-run elsewhere and then
    # finds its output valid: "skipped", not computed twice
    counts = log["counts"]
    assert killed and log["workers_gone"] == killed and log["complete"]
    assert set(counts) <= {"done", "skipped"} and counts.get("skipped", 0) <= 1 and sum(counts.values()) == 10
    # a worker killed while writing leaves its temporary, never a partial final file; the run
    # removes such temporaries of finished steps
    assert not list(out.glob(".*"))
    _assert_equal_to_serial(out, "bp", serial)


def test_cli_killed_mid_series_resumes(series_dir, serial, tmp_path, capsys):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fastinv", "dem", "bp", "--series", str(series_dir / "*.fits"), "-o", str(out), "-q"]
    proc = subprocess.Popen(cmd + ["--scheduler", "threads", "--threads", "1"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list(out.glob("dem_bp_*.fits"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = {p.name for p in out.glob("dem_bp_*.fits")}
    assert 2 <= len(before) < 10, "the run was not interrupted mid-series"
    log = json.loads((out / LOG_NAME).read_text())
    assert "pending" in {e["status"] for e in log["steps"].values()}
    assert main(["dem", "bp", "--series", str(series_dir / "*.fits"), "-o", str(out), "-q"]) == 0
    log = json.loads((out / LOG_NAME).read_text())
    assert log["counts"] == {"skipped": len(before), "done": 10 - len(before)} and log["complete"]
    assert "10 steps: done" in capsys.readouterr().out
    _assert_equal_to_serial(out, "bp", serial)


def test_cli_series_errors(series_dir, tmp_path, capsys):
    assert main(["dem", "bp", "-o", str(tmp_path)]) == 1
    assert "either six AIA files or --series" in capsys.readouterr().err
    assert main(["dem", "bp", "--series", str(tmp_path / "none*.fits"), "-o", str(tmp_path)]) == 1
    assert "matches no file" in capsys.readouterr().err
    assert main(["dem", "deepem", "--series", "x", "-o", str(tmp_path), "--scheduler", "gpus:2"]) == 1
    assert "threads[:N], processes[:N]" in capsys.readouterr().err


def test_failed_step_is_logged_and_the_others_go_on(series_dir, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for p in series_dir.glob("*.fits"):
        shutil.copy(p, inputs / p.name)
    bad = next(inputs.glob("*01-52-14_171.fits"))
    with fits.open(bad, mode="update") as hdul:
        hdr = next(h for h in hdul if h.header.get("NAXIS") == 2).header
        hdr["EXPTIME"] = 0.0
    out = tmp_path / "out"
    argv = ["dem", "deepem", "--series", str(inputs / "*.fits"), "-o", str(out), "-q", "--scheduler", "threads:2"]
    assert main(argv) == 1
    log = json.loads((out / LOG_NAME).read_text())
    assert log["counts"] == {"done": 9, "failed": 1}
    failed = [e for e in log["steps"].values() if e["status"] == "failed"]
    assert bad.name in failed[0]["error"] and "EXPTIME" in failed[0]["error"]
    printed = capsys.readouterr().out
    assert "failed: ValueError" in printed and "done 9, failed 1" in printed
    assert not (out / f"dem_deepem_{next(k for k, e in log['steps'].items() if e['status'] == 'failed')}.fits").exists()


def _flaky(step: Step) -> dict:
    """Fails on its first attempt at each step, succeeds on the second."""
    marker = step.output.with_suffix(".tried")
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError("first attempt fails")
    step.output.write_text("ok")
    return {}


def _always_redo(step: Step) -> str:
    return "always redone"


def test_retries(tmp_path):
    steps = [Step(f"s{i}", tmp_path / f"s{i}.out") for i in range(3)]
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        log = run_steps(steps, _flaky, _always_redo, client, tmp_path / "log.json", retries=0, progress=False)
        assert log["counts"] == {"failed": 3} and "first attempt fails" in log["steps"]["s0"]["error"]
        for s in steps:
            s.output.with_suffix(".tried").unlink()
        log = run_steps(steps, _flaky, _always_redo, client, tmp_path / "log.json", retries=1, progress=False)
        assert log["counts"] == {"done": 3} and all(s.output.read_text() == "ok" for s in steps)


def test_cli_deepem_series_refine_and_errors(series_dir, tmp_path, capsys):
    """--refine/--errors flow through to every step: each file is bitwise the single run's
    ``run_deepem(files, refine=True, errors=True)`` (REFINE map, *_ERR HDUs, the errors'
    precision); a re-run without --refine, or with another --model, redoes every step and says
    why; an identical re-run skips them."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    steps, _ = group_steps(sorted(series_dir.glob("*.fits")))
    for _, files in steps[:2]:  # two steps keep it short
        for p in files:
            shutil.copy(p, inputs / Path(p).name)
    out = tmp_path / "out"
    argv = ["dem", "deepem", "--series", str(inputs / "*.fits"), "-o", str(out), "-q", "--scheduler", "threads:1"]
    assert main(argv + ["--refine", "--errors"]) == 0
    log = json.loads((out / LOG_NAME).read_text())
    assert log["counts"] == {"done": 2} and log["options"]["refine"] is True
    for name, files in steps[:2]:
        ref = tmp_path / f"ref_{name}.fits"
        run_deepem([inputs / Path(p).name for p in files], ref, refine=True, errors=True)
        got = out / f"dem_deepem_{name}.fits"
        assert _content(got) == _content(ref)
        with fits.open(got) as hdul:
            assert hdul[0].header["FI_REFIN"] and {"REFINE", "EM_ERR", "LOGT_EM_ERR", "EM_TOTAL_ERR"} <= {
                h.name for h in hdul
            }
            assert np.any(hdul["REFINE"].data == 1)  # the refinement moved some pixels
            # the shipped card's reference input: the float32 Jacobian on any CPU
            assert hdul[0].header["FI_EPREC"] == "fp32"
    assert main(argv + ["--refine", "--errors"]) == 0
    assert json.loads((out / LOG_NAME).read_text())["counts"] == {"skipped": 2}
    assert main(argv + ["--errors"]) == 0
    log = json.loads((out / LOG_NAME).read_text())
    assert log["counts"] == {"done": 2} and all("--refine" in e["redone"] for e in log["steps"].values())
    assert main(argv) == 0
    log = json.loads((out / LOG_NAME).read_text())
    assert log["counts"] == {"done": 2} and all("--errors" in e["redone"] for e in log["steps"].values())
    assert main(argv + ["--model", "deepem18"]) == 0
    log = json.loads((out / LOG_NAME).read_text())
    assert log["counts"] == {"done": 2} and all("deepem21" in e["redone"] for e in log["steps"].values())
    assert main(argv + ["--model", "deepem18"]) == 0
    assert json.loads((out / LOG_NAME).read_text())["counts"] == {"skipped": 2}
    capsys.readouterr()
