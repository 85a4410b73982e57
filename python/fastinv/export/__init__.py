"""Export a PyTorch network to a fastinv model file.

A fastinv model file is ONE ``.safetensors`` file (see ``docs/model-format.md``):
float32 little-endian tensors plus the layer graph as a JSON string under the
``fastinv.graph`` key of the safetensors ``__metadata__``. The network is traced
with :mod:`torch.fx` (no per-model code), its per-sample shapes are found by
running ``example_input`` through the traced graph, BatchNorm is folded into the
preceding convolution/linear layer where it can be, Dropout/Identity are dropped.

torch is imported only when :func:`export` is called: fastinv itself runs on
numpy alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from .serialize import FORMAT_VERSION, read_safetensors, write_safetensors

__all__ = ["export", "update_card", "FORMAT_VERSION"]

_RESERVED_KEYS = ("fastinv.graph", "fastinv.version")


def export(
    module: Any,
    path: str | os.PathLike,
    example_input: Any,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a trained PyTorch network to a fastinv model file.

    Parameters
    ----------
    module : torch.nn.Module
        The network. It is traced with ``torch.fx.symbolic_trace`` and exported
        in eval mode (its train/eval mode is restored afterwards). Supported:
        Conv1d (groups 1, zero padding incl. ``'same'``/``'valid'``), Conv2d
        with a 1x1 kernel, Linear, BatchNorm1d/2d, ReLU, LeakyReLU, ELU, SiLU,
        GELU, Tanh, Sigmoid, Softplus, MaxPool1d, AvgPool1d, Flatten,
        Dropout/Identity, ``torch.cat`` along channels, residual ``+`` and
        their functional forms.
    path : str or os.PathLike
        Output file (conventionally ``*.safetensors``); written atomically.
    example_input : torch.Tensor or numpy.ndarray
        A batch the network accepts: (N, C) for dense networks, (N, C, L) for
        1D convolution networks, (N, C, H, W) for per-pixel networks of 1x1
        convolutions. Only its shape matters (and N is free at run time).
    metadata : mapping of str to str, optional
        Extra entries for the file's ``__metadata__`` (e.g. ``fastinv.card``).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    ValueError
        For any layer or operation fastinv cannot run, naming it and its type.

    Examples
    --------
    >>> import torch, fastinv
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(6, 300, 1), torch.nn.LeakyReLU(0.01),
    ...                           torch.nn.Conv2d(300, 18, 1))
    >>> fastinv.export(net, "deepem.safetensors", torch.zeros(1, 6, 8, 8))  # doctest: +SKIP
    PosixPath('deepem.safetensors')
    """
    from .._optional import require
    from .trace import Tracer

    torch = require("torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"export() needs a torch.nn.Module, got {type(module).__name__}")
    user_meta = _check_metadata(metadata)
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        with torch.no_grad():
            graph, tensors = Tracer(module, example_input).run()
    finally:
        for m, mode in modes.items():  # per module: restores mixed train/eval states exactly
            m.training = mode

    from .. import __version__

    meta = dict(user_meta)
    meta["fastinv.graph"] = json.dumps(graph, separators=(",", ":"))
    meta["fastinv.version"] = str(__version__)
    out = Path(path)
    write_safetensors(out, tensors, meta)
    return out


def update_card(path: str | os.PathLike, updates: Mapping[str, Any]) -> dict:
    """Merge ``updates`` into a model file's card (``fastinv.card``) and rewrite the file
    atomically; the ``<path>.json`` copy of the card is rewritten too when it exists.

    Returns
    -------
    dict
        The new card.
    """
    from .._atomic import write_text

    path = Path(path)
    tensors, metadata = read_safetensors(path)
    card = json.loads(metadata.get("fastinv.card", "{}"))
    card.update(updates)
    metadata["fastinv.card"] = json.dumps(card)
    write_safetensors(path, tensors, metadata)
    sidecar = path.with_suffix(path.suffix + ".json")
    if sidecar.exists():
        write_text(sidecar, json.dumps(card, indent=2))
    return card


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    out = {}
    for key, value in dict(metadata).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"metadata must map str to str (safetensors __metadata__); got {key!r}: {type(value).__name__}. "
                "Serialise other values first, e.g. with json.dumps."
            )
        if key in _RESERVED_KEYS:
            raise ValueError(f"metadata key {key!r} is written by fastinv.export itself; use another key")
        out[key] = value
    return out
