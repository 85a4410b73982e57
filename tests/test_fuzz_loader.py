"""Fuzz the C++ model loader for a bounded time with atheris (libFuzzer's mutator),
starting from valid exported models. Passes when no input crashes the process or
raises anything but ValueError/TypeError/OSError. FASTINV_FUZZ_SECONDS sets the time."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")
torch = pytest.importorskip("torch")

import fastinv  # noqa: E402

HERE = Path(__file__).resolve().parent


class _Branchy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv1d(2, 3, 3, padding=1)
        self.b = torch.nn.Conv1d(2, 3, 5, padding=2, dilation=1)
        self.bn = torch.nn.BatchNorm1d(6)
        self.pool = torch.nn.AvgPool1d(2)
        self.head = torch.nn.Linear(6 * 4, 3)

    def forward(self, x):
        y = torch.cat([torch.relu(self.a(x)), torch.tanh(self.b(x))], dim=1)
        y = self.pool(self.bn(y) + y)
        return self.head(torch.flatten(y, 1))


def _seeds(corpus: Path) -> None:
    torch.manual_seed(0)
    nets = {
        "pixel": (
            torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.LeakyReLU(0.01), torch.nn.Conv2d(4, 2, 1)),
            torch.zeros(1, 3, 2, 2),
        ),
        "mlp": (torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.SiLU(), torch.nn.Linear(5, 2)), torch.zeros(2, 3)),
        "cnn": (_Branchy(), torch.zeros(2, 2, 8)),
    }
    for name, (net, example) in nets.items():
        fastinv.export(net.eval(), corpus / f"{name}.safetensors", example)


@pytest.mark.slow
def test_fuzz_model_loader(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _seeds(corpus)
    seconds = int(os.environ.get("FASTINV_FUZZ_SECONDS", "60"))
    out = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz" / "fuzz_loader.py"),
            str(corpus),
            f"-max_total_time={seconds}",
            "-max_len=65536",
            "-rss_limit_mb=4096",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 120,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    tail = (out.stdout + out.stderr)[-4000:]
    print(tail)
    assert out.returncode == 0, tail
    assert "Done" in tail and "runs in" in tail, "the fuzzer did not run to completion"
