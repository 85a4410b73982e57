"""The comparison table every fastinv benchmark prints: one row per implementation.

Used by ``fastinv bench`` and by bench/summarize.py (the engine benchmark's summary), so a
user's figures and the project's read the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["TABLE_HEADER", "table_rows"]

#: Header of the table (markdown) that :func:`table_rows` fills.
TABLE_HEADER = [
    "| case | impl | median | samples/s | GFLOP/s (as written) | of peak (executed) | fastinv speed-up |",
    "|---|---|---|---|---|---|---|",
]


def table_rows(case: str, impls: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown rows for one case, fastest first.

    ``impls`` maps an implementation's name to its figures: ``median`` (seconds),
    ``samples_per_s`` and, where known, ``gflops`` and ``fraction_of_peak`` (or the older
    key ``fraction_of_fma_peak``). fastinv's speed-up over a peer is the peer's median
    over fastinv's (>1: fastinv is faster).

    Examples
    --------
    >>> rows = table_rows("net", {"fastinv": {"median": 0.5, "samples_per_s": 2.0},
    ...                          "torch": {"median": 1.0, "samples_per_s": 1.0}})
    >>> rows[1]
    '| net | torch | 1000.0 ms | 1 | — | — | 2.00x |'
    """
    ours = impls.get("fastinv")
    lines = []
    for impl, r in sorted(impls.items(), key=lambda kv: kv[1]["median"]):
        speedup = f"{r['median'] / ours['median']:.2f}x" if ours and impl != "fastinv" else "—"
        gflops = r.get("gflops")
        frac = r.get("fraction_of_peak", r.get("fraction_of_fma_peak"))
        lines.append(
            f"| {case} | {impl} | {r['median'] * 1e3:.1f} ms | {r['samples_per_s']:.3g} | "
            f"{_or_dash(gflops, '{:.1f}')} | {_or_dash(frac, '{:.0%}')} | {speedup} |"
        )
    return lines


def _or_dash(value: Any, fmt: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else fmt.format(value)


def median(values: Iterable[float]) -> float:
    """The median of some timings (NaN for none)."""
    v = sorted(values)
    if not v:
        return math.nan
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else 0.5 * (v[mid - 1] + v[mid])
