"""Network architectures of fastinv's Stokes inversion (PyTorch; exported with fastinv.export).

- :func:`compact_cnn`: the default, a small 1D CNN along wavelength (Stokes I, Q, U, V as
  channels), three convolutions with pooling and a dense head, sized so that one DKIST ViSP
  frame (2 555 profiles) inverts in tens of milliseconds on two CPU cores.
- :class:`MUISCA`: Agudelo et al.'s multi-scale CNN (juagudeloo/Tesis_maestria_OAN,
  modules/nn_inversion_model.py): mean-pooled copies of I and V at scales 1, 2, 3 through ONE
  shared block (Conv1d 16 and 32 filters, kernel 5, max-pool 2), concatenated along
  wavelength, four dense layers as wide as the features (1 344 for 112 wavelengths), and a
  linear output layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["compact_cnn", "MUISCA", "build"]


def _pooled(length: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (length + 2 * padding - kernel) // stride + 1


def compact_cnn(
    n_channels: int,
    n_wavelength: int,
    n_outputs: int,
    *,
    width: int = 64,
    hidden: int = 128,
    stride_first: bool | None = None,
) -> nn.Sequential:
    """Conv(C->w/2, k5) - [pool] - Conv(w/2->w/2, k5) - pool - Conv(w/2->w, k5) - pool - dense.

    The first convolution has stride 2 instead of a pooling layer when the grid is finer
    than ~25 mA per point (``stride_first``; default: when ``n_wavelength > 140``), which
    halves the cost of the oversampled ViSP grid without discarding a resolution element.

    Examples
    --------
    >>> import torch
    >>> net = compact_cnn(4, 112, 42)
    >>> tuple(net(torch.zeros(2, 4, 112)).shape)
    (2, 42)
    """
    if stride_first is None:
        stride_first = n_wavelength > 140
    half = width // 2
    layers: list[nn.Module] = [nn.Conv1d(n_channels, half, 5, stride=2 if stride_first else 1, padding=2), nn.ReLU()]
    length = _pooled(n_wavelength, 5, 2 if stride_first else 1, 2)
    if not stride_first:
        layers.append(nn.MaxPool1d(2))
        length //= 2
    layers += [nn.Conv1d(half, half, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2)]
    length //= 2
    layers += [nn.Conv1d(half, width, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2)]
    length //= 2
    layers += [nn.Flatten(), nn.Linear(width * length, hidden), nn.ReLU(), nn.Linear(hidden, n_outputs)]
    return nn.Sequential(*layers)


class _SharedBlock(nn.Module):
    def __init__(self, n_channels: int, kernel: int = 5) -> None:
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv1d(n_channels, 16, kernel), nn.ReLU(), nn.MaxPool1d(2))
        self.c2 = nn.Sequential(nn.Conv1d(16, 32, kernel), nn.ReLU(), nn.MaxPool1d(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(self.c1(x))


class MUISCA(nn.Module):
    """Agudelo's multi-scale CNN for (N, 2, n_wavelength) I and V profiles.

    Examples
    --------
    >>> import torch
    >>> net = MUISCA(112, 63)
    >>> tuple(net(torch.zeros(2, 2, 112)).shape)
    (2, 63)
    """

    def __init__(
        self,
        n_wavelength: int,
        n_outputs: int,
        scales: Sequence[int] = (1, 2, 3),
        n_channels: int = 2,
        n_dense: int = 4,
    ) -> None:
        super().__init__()
        self.coarse_grains = nn.ModuleList([nn.AvgPool1d(s) for s in scales])
        self.block = _SharedBlock(n_channels)
        positions = 0
        for s in scales:
            n = n_wavelength // s
            for _ in range(2):
                n = (n - 5 + 1) // 2
            positions += n
        features = positions * 32
        self.flatten = nn.Flatten()
        self.dense = nn.Sequential(*[m for _ in range(n_dense) for m in (nn.Linear(features, features), nn.ReLU())])
        self.output = nn.Linear(features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = [self.block(cg(x)) for cg in self.coarse_grains]
        return self.output(self.dense(self.flatten(torch.cat(maps, dim=-1))))


def build(architecture: str, n_channels: int, n_wavelength: int, n_outputs: int) -> nn.Module:
    """``"compact-cnn"`` or ``"muisca"`` for the given input and output sizes."""
    if architecture == "compact-cnn":
        return compact_cnn(n_channels, n_wavelength, n_outputs)
    if architecture == "muisca":
        return MUISCA(n_wavelength, n_outputs, n_channels=n_channels)
    raise ValueError(f"unknown architecture {architecture!r}: use 'compact-cnn' or 'muisca'")
