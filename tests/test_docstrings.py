"""Run the ``>>>`` examples in every docstring of the installed package.

The examples are the documentation people copy; each runs here in a fresh temporary folder.
Examples that need data or software a test machine may not have are marked
``# doctest: +SKIP`` in the docstring, with the reason beside them.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import fastinv
import pytest

MODULES = sorted(m.name for m in pkgutil.walk_packages(fastinv.__path__, "fastinv.") if not m.name.endswith("__main__"))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _tests(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [
        t
        for t in doctest.DocTestFinder(exclude_empty=True).find(module, name)
        if t.examples and t.name.startswith(name)
    ]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tests = _tests(name)
    if not tests:
        pytest.skip("no examples")
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_examples_are_found():
    # guards the finder: these modules have examples that must run
    assert _tests("fastinv.stokes") and _tests("fastinv.dem") and _tests("fastinv._units")
    assert len(MODULES) > 40


def test_api_reference_is_current():
    """docs/api.md is generated from the docstrings; regenerate it when they change."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parent.parent / "tools" / "api_reference.py"
    r = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
