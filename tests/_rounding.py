"""Predicted rounding errors of the fused CUDA kernel, from the formats' unit roundoff and
the network's reduction length, so a test bound follows the arithmetic and not a figure
seen once (tests/test_cuda.py, bench/gpu_smoke.py).

Two predictions:

* :func:`rounding_vs_exact`: a tf32/bf16 network against exact arithmetic. Each layer
  rounds its weights and its input to the format (relative errors of RMS about
  ``u/sqrt(3)``, ``u`` the unit roundoff); for terms of random sign a dot product keeps that
  relative error whatever its length, so two roundings per layer over ``L`` layers add in
  quadrature to ``u * sqrt(2 L / 3)``. DeepEM (3 layers): tf32 6.9e-4, bf16 5.5e-3 (seen:
  7.1-8.5e-4 and 5.7-7.4e-3).
* :func:`same_precision_difference`: two computations of the same precision that differ
  only in the float32 summation order (device vs emulation, emulation vs an exact-sum
  model). Their float32 sums differ by about ``g = u32 sqrt(K)`` relatively (a random
  walk over the reduction length ``K``). In fp32 that is the difference, summed in
  quadrature over the layers. In tf32/bf16 the hidden activations are rounded to the
  format: a difference ``g`` flips a rounding with probability about ``g / u`` and a flip
  costs ``u``, so the expected relative L2 difference is ``sqrt(L g u)`` per network.

A bound is ``FACTOR`` times the prediction: rounding is a sum of many independent terms,
so the measured error stays within a small factor of it, while a wrong index is an
error of order one.
"""

from __future__ import annotations

import math

UNIT_ROUNDOFF = {"fp32": 2.0**-24, "tf32": 2.0**-11, "bf16": 2.0**-8}
FACTOR = 4.0


def rounding_vs_exact(precision: str, nlayers: int) -> float:
    """Predicted relative L2 error of a ``precision`` network of ``nlayers`` layers against
    exact arithmetic, from operand rounding alone (fp32: float32 summation, negligible)."""
    return UNIT_ROUNDOFF[precision] * math.sqrt(2.0 * nlayers / 3.0)


def same_precision_difference(precision: str, nlayers: int, kmax: int) -> float:
    """Predicted relative L2 difference between two ``precision`` computations of a network
    of ``nlayers`` layers (longest reduction ``kmax``) that differ only in summation order."""
    g = UNIT_ROUNDOFF["fp32"] * math.sqrt(max(kmax, 1))
    if precision == "fp32":
        return g * math.sqrt(nlayers)
    return math.sqrt(nlayers * g * UNIT_ROUNDOFF[precision])


def same_precision_max(precision: str, nlayers: int, kmax: int) -> float:
    """Bound on max |difference| / max |output| between two ``precision`` computations: in
    tf32/bf16 one flipped rounding of a hidden activation costs up to one unit roundoff,
    carried to the output with a gain of order one (2u); in fp32 the L2 prediction times FACTOR twice (one
    element may carry the whole difference)."""
    if precision == "fp32":
        return FACTOR * FACTOR * same_precision_difference("fp32", nlayers, kmax)
    return 2.0 * UNIT_ROUNDOFF[precision]
