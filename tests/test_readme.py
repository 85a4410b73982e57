"""The README's Python examples run as written (each in a fresh interpreter, in a temporary
folder), except those marked ``<!-- not run by tests/test_readme.py: reason -->``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP = "<!-- not run by tests/test_readme.py"


def _blocks() -> list[tuple[int, str, str | None]]:
    text = README.read_text()
    out = []
    for m in re.finditer(r"```python\n(.*?)```", text, re.S):
        before = text[: m.start()].rstrip().splitlines()[-1]
        line = text[: m.start()].count("\n") + 1
        out.append((line, m.group(1), before if before.startswith(SKIP) else None))
    return out


BLOCKS = _blocks()


def test_the_readme_has_examples():
    assert len(BLOCKS) >= 5 and sum(skip is None for _, _, skip in BLOCKS) >= 5


@pytest.mark.parametrize("line, code, skip", BLOCKS, ids=[f"line{b[0]}" for b in BLOCKS])
def test_readme_example_runs(line, code, skip, tmp_path):
    if skip:
        pytest.skip(skip)
    if "import torch" in code:
        pytest.importorskip("torch")  # the README says this example needs fastinv[train]
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"README.md line {line}:\n{r.stderr[-3000:]}"
