"""Helpers of the embedding tests: run a command (failing the test with its output), the
environment an embedder has, and skipping when a tool is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command; on failure, fail the test with its output."""
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited with {out.returncode}:\n{out.stdout}\n{out.stderr}")
    return out


def clean_env(**extra: str) -> dict:
    """The environment without FASTINV_DATA_DIR (the installed library must find its data)."""
    env = {k: v for k, v in os.environ.items() if k != "FASTINV_DATA_DIR"}
    env.update(extra)
    return env


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH")
