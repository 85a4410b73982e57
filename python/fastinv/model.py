"""Run exported networks with fastinv's own kernels.

Examples
--------
>>> import numpy as np, fastinv                                    # doctest: +SKIP
>>> model = fastinv.load("deepem.safetensors", threads=2)          # doctest: +SKIP
>>> em = model(np.sqrt(aia_cube))          # (6, H, W) -> (18, H, W)  # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _core


class Model:
    """A network loaded from a fastinv model file (written by :func:`fastinv.export`).

    Calling the model returns exactly what the exported PyTorch module returns for
    the same input (float32), computed by fastinv's SIMD kernels on the CPU.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.safetensors`` model file.
    device : {"cpu", "cuda"}
        Where to run it.
    threads : int, optional
        Threads per call; default: all OpenMP threads (``OMP_NUM_THREADS``).

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        The file is not a valid fastinv model (the message names the problem).
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None):
        if threads is not None and (not isinstance(threads, (int, np.integer)) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self._core = _core.Model.load(os.fspath(path), device)
        self.path = os.fspath(path)
        self.device = device
        self.threads = int(threads) if threads else 0

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample (channels for per-pixel networks, (C, L) for 1D CNNs)."""
        return tuple(self._core.input_shape)

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one sample's output."""
        return tuple(self._core.output_shape)

    @property
    def layout(self) -> str:
        """How batches are laid out: ``"nchw"`` (per-pixel network), ``"nc"`` or ``"ncl"``."""
        return self._core.input_layout

    @property
    def metadata(self) -> dict[str, str]:
        """The file's ``__metadata__`` (graph, model card, writer version)."""
        return dict(self._core.metadata)

    def info(self) -> dict[str, Any]:
        """Layers, parameter count and FLOPs per sample (multiply-add = 2 FLOPs)."""
        return self._core.info()

    def __call__(self, x: np.ndarray, threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Run the network.

        Parameters
        ----------
        x : numpy.ndarray, float32 or float64
            ``(N, C, H, W)`` or ``(C, H, W)`` for per-pixel networks, ``(N, C)`` or
            ``(N, C, L)`` otherwise, as the PyTorch module takes it. Any strides; no
            copy of the whole array is made.
        threads : int, optional
            Overrides the model's thread count for this call.
        out : numpy.ndarray, float32, optional
            Write the result here instead of a new array (any strides; shape exactly that of
            the result; must not overlap ``x``). Lets frame-by-frame callers reuse one buffer.

        Returns
        -------
        numpy.ndarray, float32
            Shaped like the PyTorch module's output (``out`` itself when given).

        Examples
        --------
        >>> y = np.empty((len(x), *model.output_shape), np.float32)   # doctest: +SKIP
        >>> model(x, out=y) is y                                      # doctest: +SKIP
        True
        """
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"input must be float32 or float64, got {x.dtype}; convert with x.astype(np.float32)")
        nthreads = self.threads if threads is None else int(threads)
        shape = self.output_shape
        if self.layout == "nchw":
            if x.ndim == 4:
                axes = ([0, 2, 3], [1])
                out_full, out_axes = (x.shape[0], shape[0], x.shape[2], x.shape[3]), ([0, 2, 3], [1])
            elif x.ndim == 3:
                axes = ([1, 2], [0])
                out_full, out_axes = (shape[0], x.shape[1], x.shape[2]), ([1, 2], [0])
            else:
                raise ValueError(f"a per-pixel network takes (N, C, H, W) or (C, H, W) input, got shape {x.shape}")
        else:
            want = 1 + len(self.input_shape)
            if x.ndim != want:
                raise ValueError(f"this network takes input of shape (N, {', '.join(map(str, self.input_shape))}), "
                                 f"got {x.shape}")
            axes = ([0], list(range(1, x.ndim)))
            out_full, out_axes = (x.shape[0], *shape), ([0], list(range(1, 1 + len(shape))))
        feature_shape = tuple(x.shape[a] for a in axes[1])
        if feature_shape != self.input_shape:
            raise ValueError(f"input has per-sample shape {feature_shape} but the model expects {self.input_shape}")
        if out is not None:
            if not isinstance(out, np.ndarray):
                raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
            if out.shape != tuple(out_full):
                raise ValueError(f"out has shape {out.shape}, the result has shape {tuple(out_full)}")
            self._core.run(x, axes[0], axes[1], list(out_full), out_axes[0], out_axes[1], nthreads, out)
            return out
        return self._core.run(x, axes[0], axes[1], list(out_full), out_axes[0], out_axes[1], nthreads)

    def __repr__(self) -> str:
        i = self.info()
        return (f"fastinv.Model({self.path!r}, layout={self.layout}, input={self.input_shape}, "
                f"output={self.output_shape}, parameters={i['parameters']}, device={self.device})")


def load(path: str | os.PathLike, device: str = "cpu", threads: int | None = None) -> Model:
    """Load a model file written by :func:`fastinv.export`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.safetensors`` file.
    device : {"cpu", "cuda"}
        Backend to run on.
    threads : int, optional
        Threads per call (default: OpenMP's default).

    Returns
    -------
    Model

    Examples
    --------
    >>> model = fastinv.load("deepem.safetensors")   # doctest: +SKIP
    >>> model.info()["flops_per_sample"]              # doctest: +SKIP
    194400
    """
    return Model(path, device=device, threads=threads)
