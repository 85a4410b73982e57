"""Dask glue shared by the per-pixel inversions: dask arrays in, dask arrays out.

A per-pixel method (``BasisPursuit.solve``, ``DeepEM.invert``, ``StokesNet.predict``) runs
blockwise over pixels: the inputs are flattened to (features, pixels), rechunked so that a
chunk holds whole pixels (all channels / the whole profile) and ``pixels_per_task`` of them
(a multiple of 64, the Basis Pursuit warm-start block, so a block's results equal one call on
the whole image bit for bit), and each block becomes one task.

The solver itself travels to worker processes as a recipe, not as its weights: the classes
pickle through :func:`cached_instance`, which builds the object once per process and hands
out that copy afterwards (their ``solve``/``run`` are const in C++, so the threads of a
worker share it).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from ._optional import require

__all__ = [
    "is_dask_array",
    "cached_instance",
    "recipe_key",
    "file_sha256",
    "map_pixels",
    "pixels_per_task",
    "DEFAULT_PIXELS_PER_TASK",
]

#: Pixels per task unless dask's config sets ``fastinv.pixels_per_task``: a 4096^2 AIA
#: frame in 1024 tasks, each a few hundred ms of Basis Pursuit.
DEFAULT_PIXELS_PER_TASK = 16384

_CACHE: dict[Hashable, Any] = {}
_LOCK = threading.Lock()


def is_dask_array(x: Any) -> bool:
    """True for a ``dask.array.Array`` (checked without importing dask)."""
    return type(x).__module__.startswith("dask.") and hasattr(x, "chunks") and hasattr(x, "dask")


def cached_instance(key: Hashable, factory: Callable[..., Any], *args: Any) -> Any:
    """``factory(*args)`` built once per process under ``key``, then reused.

    Used as the unpickler of solvers and networks (their ``__reduce__``), so a task carries
    the recipe (a path and its SHA-256, or the constructor's arguments) and each worker
    process loads the model once.
    """
    with _LOCK:
        obj = _CACHE.get(key)
        if obj is None:
            obj = _CACHE[key] = factory(*args)
        return obj


def recipe_key(kind: str, recipe: tuple) -> tuple[str, str]:
    """Cache key of an object built from ``recipe`` (SHA-256 of its pickle)."""
    return (kind, hashlib.sha256(pickle.dumps(recipe, protocol=4)).hexdigest())


def file_sha256(path: str) -> str:
    """SHA-256 of a file (the identity of a model file in cache keys)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pixels_per_task() -> int:
    """Pixels per task: dask config ``fastinv.pixels_per_task`` rounded up to a multiple of 64."""
    dask = require("dask", "dask arrays")
    n = int(dask.config.get("fastinv.pixels_per_task", DEFAULT_PIXELS_PER_TASK))
    if n < 1:
        raise ValueError(f"dask config fastinv.pixels_per_task must be >= 1, got {n}")
    return -(-n // 64) * 64


def map_pixels(
    func: Callable[..., dict[str, np.ndarray]],
    arrays: list,
    pixel_shape: tuple[int, ...],
) -> dict[str, Any]:
    """Run ``func`` blockwise over pixels; return its outputs as lazy dask arrays.

    Parameters
    ----------
    func : callable
        ``func(*blocks, first_pixel=int) -> dict of ndarray``; block ``i`` is ``arrays[i]``
        flattened to (features, n) for n consecutive pixels starting at ``first_pixel``; each
        output is (..., n). Must be picklable for process/distributed schedulers.
    arrays : list of dask or NumPy arrays or None
        Shaped (*features, *pixel_shape); None entries are passed to ``func`` as None.
    pixel_shape : tuple of int
        The trailing pixel axes all arrays share.

    Returns
    -------
    dict of str to dask.array.Array
        Each output shaped (*its features, *pixel_shape).
    """
    da = require("dask.array", "dask arrays")
    delayed = require("dask", "dask arrays").delayed
    npix = int(np.prod(pixel_shape, dtype=np.int64))
    block = pixels_per_task()
    flats = []
    for a in arrays:
        if a is None:
            flats.append(None)
            continue
        a = da.asarray(a)
        lead = a.shape[: a.ndim - len(pixel_shape)]
        nfeat = int(np.prod(lead, dtype=np.int64))
        flats.append(a.reshape((nfeat, npix), merge_chunks=True).rechunk((nfeat, block)))
    # one pixel of each input, solved here, gives the outputs' names, features and dtypes
    probe_in = [None if f is None else np.zeros((f.shape[0], 1), f.dtype) for f in flats]
    probe = func(*probe_in, first_pixel=0)
    live = [f for f in flats if f is not None]
    chunks = live[0].chunks[1] if live else ()
    parts: dict[str, list] = {name: [] for name in probe}
    start = 0
    for i, n in enumerate(chunks):
        blocks = [None if f is None else f.blocks[0, i] for f in flats]
        res = delayed(func)(*blocks, first_pixel=start)
        for name, p in probe.items():
            parts[name].append(da.from_delayed(res[name], shape=p.shape[:-1] + (n,), dtype=p.dtype))
        start += n
    return {
        name: da.concatenate(parts[name], axis=-1).reshape(probe[name].shape[:-1] + tuple(pixel_shape))
        for name in probe
    }
