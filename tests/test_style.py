"""The code stays formatted and lint-clean: ruff (Python) and clang-format (C++/CUDA).

Configuration lives in ``pyproject.toml`` ([tool.ruff]) and ``.clang-format``; both tools are
pinned in the ``test`` extra. To fix a failure, run from the repository root::

    ruff format . && ruff check --fix .
    clang-format -i $(git ls-files 'cpp/*.[ch]pp' 'cpp/*.h' 'cuda/*.cu' 'cuda/*.[ch]pp')
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPP_SUFFIXES = {".cpp", ".hpp", ".h", ".cu", ".cuh"}


def _tool(name: str) -> list[str]:
    if name == "ruff":
        return [sys.executable, "-m", "ruff"]
    exe = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.fail(f"{name} is not installed; it is part of the test extra: pip install '.[test]'")
    return [exe]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def _cpp_sources() -> list[str]:
    files = []
    for folder in ("cpp", "cuda", "examples"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in CPP_SUFFIXES and path.is_file():
                files.append(str(path.relative_to(ROOT)))
    return files


def test_python_is_lint_clean():
    result = _run(_tool("ruff") + ["check", "--no-cache", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_python_is_formatted():
    result = _run(_tool("ruff") + ["format", "--check", "--no-cache", "."])
    assert result.returncode == 0, "run `ruff format .`:\n" + result.stdout + result.stderr


def test_cpp_and_cuda_are_formatted():
    files = _cpp_sources()
    assert len(files) > 50, "C++ sources not found: is this a source checkout?"
    result = _run(_tool("clang-format") + ["--dry-run", "--Werror"] + files)
    assert result.returncode == 0, "run clang-format -i on:\n" + result.stderr[:4000]
