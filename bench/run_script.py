"""``python bench/bench_<name>.py``: run that benchmark file under pytest-benchmark, keep
the JSON (with machine info) in bench/results/ and write its markdown summary."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

RESULTS = Path(__file__).resolve().parent / "results"


def run_and_summarize(bench_file: str, prefix: str, write_summary: Callable[[Path, Path], str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    js = RESULTS / f"{prefix}_{platform.node() or 'host'}_{time.strftime('%Y%m%dT%H%M%S')}.json"
    rc = pytest.main(
        [str(Path(bench_file)), "-q", "-p", "no:cacheprovider", f"--benchmark-json={js}", "--benchmark-min-rounds=3"]
    )
    if rc == 0:
        print(write_summary(js, RESULTS / f"{prefix}_summary.md"))
    sys.exit(rc)
