"""atheris fuzz target for the model loader: any byte string must either load (and
then run) or raise ValueError/TypeError/OSError -- never crash or raise anything else.

Run: python tests/fuzz/fuzz_loader.py CORPUS_DIR -max_total_time=60
"""
import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    from fastinv import _core


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
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
