"""atheris fuzz target for the model loader: any byte string must either load (and
then run) or raise ValueError/TypeError/OSError -- never crash or raise anything else.

The native loader is not compiled with coverage instrumentation, so libFuzzer cannot
tell interesting inputs apart and would shrink the corpus to one byte. The custom
mutator therefore always starts from one of the valid seed models and mutates either
the whole file or only its JSON header (keeping the length prefix consistent, so the
mutations reach the graph validator instead of dying at the first check).

Run: python tests/fuzz/fuzz_loader.py SEED_DIR -max_total_time=60
"""

import random
import sys
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports():
    from fastinv import _core

SEEDS: list[bytes] = []


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    base = rng.choice(SEEDS)
    if rng.random() < 0.6:
        n = int.from_bytes(base[:8], "little")
        header = atheris.Mutate(base[8 : 8 + n], n + 64)
        return len(header).to_bytes(8, "little") + header + base[8 + n :]
    return atheris.Mutate(base, max(max_size, len(base)))


def one_input(data: bytes) -> None:
    try:
        model = _core.Model.from_bytes(data)
    except (ValueError, TypeError, OSError):
        return
    shape = tuple(model.input_shape)
    x = np.full((3, *shape), 0.25, np.float32)
    out = list((3, *model.output_shape))
    model.run(x, [0], list(range(1, x.ndim)), out, [0], list(range(1, len(out))), 1)
    model.info()


if __name__ == "__main__":
    seed_dir = Path(sys.argv[1])
    SEEDS.extend(p.read_bytes() for p in sorted(seed_dir.iterdir()) if p.is_file())
    if not SEEDS:
        sys.exit(f"no seed models in {seed_dir}")
    atheris.Setup(sys.argv, one_input, custom_mutator=mutate)
    atheris.Fuzz()
