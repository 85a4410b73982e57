"""Error budget of Winograd F(2, r) convolutions in bf16 (issue 18), in NumPy: a 64 -> 64
channel Conv1d (k = 3 and 5, random weights of unit output variance, ReLU-like inputs)
computed exactly, directly with bf16-rounded inputs and weights (what precision="bf16"
does), and by Winograd with its transformed inputs B^T d and weights G g rounded to bf16
(what a bf16 Winograd kernel would multiply). Prints each one's relative L2 error against
exact arithmetic; quoted in docs/cpu-engine.md.

``python bench/bf16_winograd_error.py``
"""

from __future__ import annotations

import numpy as np


def bf16(v) -> np.ndarray:
    """float32 values rounded to bfloat16 (nearest, ties to even), as float64."""
    u = np.ascontiguousarray(v, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32).astype(np.float64)


def matrices(r: int):
    """AT (2, n), G (n, r), BT (n, n) of F(2, r) on fastinv's points (cpp/src/cpu/winograd.cpp)."""
    points = [0.0, 1.0, -1.0] if r == 3 else [0.0, 1.0, -1.0, 0.5, -0.5]

    def evaluation(k):
        return np.array([[p**j for j in range(k)] for p in points] + [[float(j == k - 1) for j in range(k)]])

    return evaluation(2).T, evaluation(r), np.linalg.inv(evaluation(r + 1)).T


def direct(x, w):
    r, lout = w.shape[2], x.shape[2] - w.shape[2] + 1
    return sum(np.einsum("ncl,oc->nol", x[:, :, t : t + lout], w[:, :, t]) for t in range(r))


def winograd(x, w, rounding):
    at, g, bt = matrices(w.shape[2])
    n, lout = at.shape[1], (x.shape[2] - w.shape[2] + 1) // 2 * 2
    u = rounding(np.einsum("at,oct->aoc", g, w))
    out = np.zeros((x.shape[0], w.shape[0], lout))
    for q in range(0, lout, 2):
        v = rounding(np.einsum("ab,ncb->nca", bt, rounding(x[:, :, q : q + n])).astype(np.float32))
        out[:, :, q : q + 2] = np.einsum("ia,noa->noi", at, np.einsum("aoc,nca->noa", u, v))
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    for r in (3, 5):
        cin = cout = 64
        w = rng.standard_normal((cout, cin, r)) / np.sqrt(cin * r)
        x = np.maximum(rng.standard_normal((200, cin, 64)), 0)
        exact = direct(x, w)
        lout = exact.shape[2] // 2 * 2
        exact = exact[:, :, :lout]

        def err(y):
            return np.linalg.norm(y[:, :, :lout] - exact) / np.linalg.norm(exact)

        e_direct, e_wino = err(direct(bf16(x), bf16(w))), err(winograd(x, w, bf16))
        print(
            f"k={r}: rel L2 vs exact: direct bf16 {e_direct:.2e}, Winograd fp64 {err(winograd(x, w, np.asarray)):.1e}, "
            f"Winograd bf16 {e_wino:.2e} ({e_wino / e_direct:.2f}x direct)"
        )


if __name__ == "__main__":
    main()
