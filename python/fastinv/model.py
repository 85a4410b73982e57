"""Run exported networks with fastinv's own kernels.

Examples
--------
>>> import numpy as np, fastinv                                    # doctest: +SKIP
>>> model = fastinv.load("deepem.safetensors", threads=2)          # doctest: +SKIP
>>> em = model(np.sqrt(aia_cube))          # (6, H, W) -> (18, H, W)  # doctest: +SKIP
>>> gpu = fastinv.load("deepem.safetensors", device="cuda", precision="bf16")  # doctest: +SKIP
>>> em = gpu(torch_cube_on_gpu)            # torch/CuPy in -> same kind out, no copies  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import _core
from ._warnings import warn_user


class Model:
    """A network loaded from a fastinv model file (written by :func:`fastinv.export`).

    Calling the model returns exactly what the exported PyTorch module returns for
    the same input (float32), computed by fastinv's SIMD kernels on the CPU or by its
    CUDA kernels on a GPU.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.safetensors`` model file.
    device : {"cpu", "cuda", "cuda:N"}
        Where to run it.
    threads : int, optional
        Threads per call; default: all OpenMP threads (``OMP_NUM_THREADS``). On CUDA,
        the threads that gather/scatter NumPy batches.
    precision : {"fp32", "tf32", "bf16", "bf16x2"}
        ``"fp32"`` (default, for science) is exact float32 arithmetic. On CUDA,
        ``"tf32"`` and ``"bf16"`` run the per-pixel kernel on tensor cores with float32
        accumulation (relative error about 1e-3 and 1e-2; docs/cuda.md). On the CPU,
        ``"bf16"`` runs the AVX512-BF16 kernels: weights and each layer's input rounded
        to bfloat16, products summed in float32, everything else float32
        (docs/cpu-engine.md); ``"bf16x2"`` (CPU only) the same kernels with each weight as
        two bfloat16 terms (hi + lo, 16 mantissa bits; twice the products): only the layer
        inputs are rounded. A CPU without AVX512-BF16 raises RuntimeError for either
        (``fastinv.info()["bf16"]`` says beforehand).

    Raises
    ------
    OSError
        The file cannot be read.
    ValueError
        The file is not a valid fastinv model, or a bad device / precision string.
    RuntimeError
        ``device="cuda"`` cannot be used (no driver, no GPU, GPU older than sm_80,
        fastinv built without CUDA); the message says what to do.
    """

    def __init__(
        self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None, precision: str = "fp32"
    ):
        if threads is not None and (not isinstance(threads, (int, np.integer)) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        if not isinstance(device, str) or not isinstance(precision, str):
            raise TypeError("device and precision must be strings, e.g. device='cuda', precision='fp32'")
        self._core = _core.Model.load(os.fspath(path), device, precision)  # verifies the checksum
        self.path = os.fspath(path)
        if "fastinv.crc32" not in self._core.metadata:
            warn_user(
                f"{self.path}: this model file has no checksum (fastinv.crc32; written before fastinv "
                "stored one), so a damaged file cannot be detected; export it again to add one"
            )
        self.device = device
        self.precision = precision
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
        """Layers, parameter count and FLOPs per sample (multiply-add = 2 FLOPs).

        ``flops_per_sample`` counts the layers as written (what every implementation is
        compared on); ``executed_flops_per_sample`` is what this backend really runs:
        fewer on the CPU where convolutions run as Winograd F(2, r) or a fused max-pool
        never reads a position, twice the layers' with ``precision="bf16x2"`` (two weight
        terms) (docs/cpu-engine.md).
        """
        return self._core.info()

    def __call__(self, x: Any, threads: int | None = None, stream: Any = None, out: Any = None) -> Any:
        """Run the network.

        Parameters
        ----------
        x : numpy.ndarray, or a CUDA array (torch.Tensor, cupy.ndarray, anything with
            ``__cuda_array_interface__``), float32 or float64
            ``(N, C, H, W)`` or ``(C, H, W)`` for per-pixel networks, ``(N, C)`` or
            ``(N, C, L)`` otherwise, as the PyTorch module takes it. Any strides; no
            copy of the whole array is made. CUDA arrays need ``device="cuda"`` and are
            read in place (zero copies when already planar, e.g. a ``(C, H, W)`` frame).
        threads : int, optional
            Overrides the model's thread count for this call.
        stream : int or stream object, optional
            CUDA arrays only: the stream to enqueue the work on (``torch.cuda.Stream``,
            ``cupy.cuda.Stream`` or a raw ``cudaStream_t`` integer). Default: the array
            library's current stream. The call returns without waiting; the result is
            ready in stream order, as for the library's own operations.
        out : array, optional
            Where to write the result (float32, the output's shape; a NumPy array for
            NumPy input, a CUDA array for CUDA input). Returned.

        Returns
        -------
        numpy.ndarray, float32 (or the input's kind of CUDA array)
            Shaped like the PyTorch module's output.
        """
        cai = _cuda_interface(x)
        if cai is not None:
            return self._call_device(x, cai, stream, out)
        if stream is not None:
            raise ValueError("stream= applies to CUDA arrays only; this input is a host array")
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"input must be float32 or float64, got {x.dtype}; convert with x.astype(np.float32)")
        nthreads = self.threads if threads is None else int(threads)
        axes, out_full, out_axes = self._axes(tuple(x.shape))
        if out is not None and not isinstance(out, np.ndarray):
            raise TypeError("out must be a float32 numpy array for NumPy input")
        return self._core.run(x, axes[0], axes[1], list(out_full), out_axes[0], out_axes[1], nthreads, out)

    def _axes(self, shape: tuple[int, ...]):
        """(sample axes, feature axes), output shape, output axes for an input shape."""
        ndim = len(shape)
        out = self.output_shape
        if self.layout == "nchw":
            if ndim == 4:
                axes = ([0, 2, 3], [1])
                out_full, out_axes = (shape[0], out[0], shape[2], shape[3]), ([0, 2, 3], [1])
            elif ndim == 3:
                axes = ([1, 2], [0])
                out_full, out_axes = (out[0], shape[1], shape[2]), ([1, 2], [0])
            else:
                raise ValueError(f"a per-pixel network takes (N, C, H, W) or (C, H, W) input, got shape {shape}")
        else:
            want = 1 + len(self.input_shape)
            if ndim != want:
                raise ValueError(
                    f"this network takes input of shape (N, {', '.join(map(str, self.input_shape))}), got {shape}"
                )
            axes = ([0], list(range(1, ndim)))
            out_full, out_axes = (shape[0], *out), ([0], list(range(1, 1 + len(out))))
        feature_shape = tuple(shape[a] for a in axes[1])
        if feature_shape != self.input_shape:
            raise ValueError(f"input has per-sample shape {feature_shape} but the model expects {self.input_shape}")
        return axes, out_full, out_axes

    def _call_device(self, x: Any, cai: dict, stream: Any, out: Any = None) -> Any:
        if not self.device.startswith("cuda"):
            raise ValueError(
                f"a CUDA array was passed to a model loaded with device={self.device!r}; load it with "
                "device='cuda' or pass a NumPy array"
            )
        typestr = cai["typestr"]
        dtype = {"<f4": "float32", "<f8": "float64"}.get(typestr)
        if dtype is None:
            raise TypeError(f"input must be float32 or float64, got a CUDA array of type {typestr}; convert it first")
        shape = tuple(int(s) for s in cai["shape"])
        itemsize = 4 if dtype == "float32" else 8
        strides = cai.get("strides") or _c_strides(shape, itemsize)
        axes, out_full, out_axes = self._axes(shape)
        if out is None:
            y = _empty_like_kind(x, out_full)
            ycai = _cuda_interface(y)
        else:
            y, ycai = out, _cuda_interface(out)
            if ycai is None or ycai["typestr"] != "<f4" or tuple(ycai["shape"]) != tuple(out_full):
                raise ValueError(f"out must be a float32 CUDA array of shape {tuple(out_full)}")
        ystrides = ycai.get("strides") or _c_strides(tuple(out_full), 4)
        handle = _stream_handle(x, cai, stream)
        self._core.run_device(
            int(cai["data"][0]),
            dtype,
            list(shape),
            [int(s) for s in strides],
            axes[0],
            axes[1],
            int(ycai["data"][0]),
            list(out_full),
            [int(s) for s in ystrides],
            out_axes[0],
            out_axes[1],
            handle,
        )
        return y

    def __repr__(self) -> str:
        i = self.info()
        return (
            f"fastinv.Model({self.path!r}, layout={self.layout}, input={self.input_shape}, "
            f"output={self.output_shape}, parameters={i['parameters']}, device={self.device}, "
            f"precision={self.precision})"
        )


def _cuda_interface(x: Any) -> dict | None:
    """The array's __cuda_array_interface__ (None for host arrays)."""
    if isinstance(x, np.ndarray):
        return None
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        if not x.is_cuda:
            return None
        x = x.detach()
    try:
        return x.__cuda_array_interface__
    except AttributeError:
        return None


def _c_strides(shape: tuple[int, ...], itemsize: int) -> list[int]:
    strides, acc = [], itemsize
    for s in reversed(shape):
        strides.append(acc)
        acc *= max(int(s), 1)
    return strides[::-1]


def _empty_like_kind(x: Any, shape) -> Any:
    """A float32 device array of `shape` of the same kind (torch / CuPy) and device as x."""
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        import torch

        return torch.empty(tuple(shape), dtype=torch.float32, device=x.device)
    try:
        import cupy
    except ImportError as e:
        raise TypeError(
            f"CUDA arrays of type {type(x).__name__} are returned as CuPy arrays; install cupy, or pass "
            "a torch tensor or a CuPy array"
        ) from e
    device = getattr(getattr(x, "device", None), "id", None)
    with cupy.cuda.Device(device if device is not None else cupy.cuda.runtime.getDevice()):
        return cupy.empty(tuple(shape), dtype=cupy.float32)


def _stream_handle(x: Any, cai: dict, stream: Any) -> int:
    """cudaStream_t (as an int) to run on: the given one, else the array library's current one."""
    if stream is not None:
        for attr in ("cuda_stream", "ptr"):  # torch.cuda.Stream, cupy.cuda.Stream
            if hasattr(stream, attr):
                return int(getattr(stream, attr))
        if isinstance(stream, (int, np.integer)) and stream >= 0:
            return int(stream)
        raise TypeError(f"stream must be a torch.cuda.Stream, cupy.cuda.Stream or an integer handle, got {stream!r}")
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        import torch

        return int(torch.cuda.current_stream(x.device).cuda_stream)
    if mod == "cupy":
        import cupy

        return int(cupy.cuda.get_current_stream().ptr)
    s = cai.get("stream")  # __cuda_array_interface__ v3: the producer's stream (1 = legacy default)
    return int(s) if s else 0


def load(path: str | os.PathLike, device: str = "cpu", threads: int | None = None, precision: str = "fp32") -> Model:
    """Load a model file written by :func:`fastinv.export`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.safetensors`` file.
    device : {"cpu", "cuda", "cuda:N"}
        Backend to run on.
    threads : int, optional
        Threads per call (default: OpenMP's default).
    precision : {"fp32", "tf32", "bf16", "bf16x2"}
        ``"fp32"`` (default, exact); ``"tf32"``/``"bf16"`` on CUDA; ``"bf16"`` and ``"bf16x2"``
        (two bf16 terms per weight) on an AVX512-BF16 CPU. See :class:`Model`.

    Returns
    -------
    Model

    Examples
    --------
    >>> model = fastinv.load("deepem.safetensors")   # doctest: +SKIP
    >>> model.info()["flops_per_sample"]              # doctest: +SKIP
    194400
    """
    return Model(path, device=device, threads=threads, precision=precision)
