"""bench/gpu_check.sh, the GPU check of a 15-minute device window (issue 19), dry-run on
the CPU: the CPU model stands in for the device, no nvcc build, no compute-sanitizer.
What a GPU window cannot afford to find out there is checked here: every phase runs,
each under its own timeout with its exit code recorded, a failed or timed-out phase does
not stop the next, at most 6 files come back (the device tool returns 8), the summary
names every phase, and one phase can be rerun alone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the smoke driver exports MUISCA through torch (on the CPU)

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "gpu_check.sh"
PHASES = ["build", "smoke", "tests", "memcheck", "racecheck", "synccheck", "bench", "bench_cnn"]


def _run(out: Path, *phases: str, **env: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """Run the dry check into `out`; return the process and {phase: rc} from summary.txt."""
    full = dict(os.environ, GPU_CHECK_DRY="1", OUT=str(out), PYTHON=sys.executable, TMPDIR=str(out.parent))
    full.update(env)
    proc = subprocess.run(["bash", str(SCRIPT), *phases], capture_output=True, text=True, env=full, timeout=300)
    summary = (out / "summary.txt").read_text() if (out / "summary.txt").exists() else ""
    rcs = dict(re.findall(r"^(\w+)\s+rc (\S+)\s+\d+ s$", summary, re.M))
    return proc, rcs


def test_dry_run_exercises_every_phase_and_returns_at_most_6_files(tmp_path):
    out = tmp_path / "out"
    proc, rcs = _run(out)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert rcs == {p: "0" for p in PHASES}, proc.stdout[-3000:]
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert len(files) <= 6 and {"summary.txt", "logs.tar.gz"} <= set(files), files
    summary = (out / "summary.txt").read_text()
    assert "DRY RUN" in summary and len(summary.splitlines()) <= 60, summary  # one screen
    assert "SMOKE:" in summary and ", 0 failed" in summary
    with tarfile.open(out / "logs.tar.gz") as tar:
        logs = {Path(m.name).name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    assert set(logs) == {f"{p}.log" for p in PHASES}
    # the smoke driver ran every pixel count and MUISCA; the tests phase ran pytest -k gpu
    assert "n=10087 vs emulation" in logs["smoke.log"] and "muisca 2555 profiles" in logs["smoke.log"]
    assert re.search(r"\d+ skipped, \d+ deselected", logs["tests.log"]), logs["tests.log"][-2000:]
    for tool in ("memcheck", "racecheck", "synccheck"):
        assert "without compute-sanitizer --tool " + tool in logs[f"{tool}.log"]
        assert "SMOKE:" in logs[f"{tool}.log"]
    assert "no benchmark results" in logs["bench.log"]


def test_a_timed_out_phase_is_recorded_and_the_next_still_runs(tmp_path):
    out = tmp_path / "out"
    proc, rcs = _run(out, "smoke", "synccheck", GPU_CHECK_T_SMOKE="1")
    assert proc.returncode == 1
    assert rcs == {"smoke": "124", "synccheck": "0"}, proc.stdout
    assert "TIMEOUT after 1 s" in (out / "summary.txt").read_text()


def test_failed_phases_do_not_stop_the_others(tmp_path):
    out = tmp_path / "out"
    proc, rcs = _run(out, "build", "smoke", "bench", PYTHON="/bin/false")
    assert proc.returncode == 1
    assert set(rcs) == {"build", "smoke", "bench"} and "0" not in rcs.values(), rcs
    assert (out / "logs.tar.gz").exists()


def test_phases_are_skipped_when_the_budget_is_spent(tmp_path):
    out = tmp_path / "out"
    proc, rcs = _run(out, "smoke", "tests", GPU_CHECK_BUDGET="10")
    assert rcs == {"smoke": "skipped", "tests": "skipped"}, proc.stdout
    assert "skipped, " in (out / "summary.txt").read_text()


def test_an_unknown_phase_is_a_usage_error(tmp_path):
    proc, _ = _run(tmp_path / "out", "smoke", "sanitize")
    assert proc.returncode == 2 and "phases: build smoke tests" in proc.stderr
