"""AIA temperature responses: the tables shipped with fastinv, or a user's CSV.

The shipped tables are exact float64 copies of demregpy's IDL save files (demregpy 1.0.0,
MIT licence; see ``fastinv/data/README.md``). Each has six channels (94, 131, 171, 193,
211, 335 A) on log T = 4.0 ... 9.0 in steps of 0.05, in DN cm^5 s^-1 pixel^-1.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence, Union

import numpy as np

__all__ = ["TemperatureResponse", "load_response", "SHIPPED_TABLES", "AIA_CHANNELS"]

#: AIA EUV channels in the order every fastinv DEM routine uses.
AIA_CHANNELS: tuple[int, ...] = (94, 131, 171, 193, 211, 335)

#: Shipped tables: name -> (file in fastinv/data, description).
SHIPPED_TABLES: dict[str, tuple[str, str]] = {
    "aia_v10_eve": (
        "aia_v10_eve.csv",
        "AIA V10, EVE-normalised, no degradation correction (demregpy aia_tresp_en.dat)",
    ),
    "aia_v10_eve_noblend": (
        "aia_v10_eve_noblend.csv",
        "AIA V10, EVE-normalised, no blends (demregpy aia_tresp_en_nb.dat)",
    ),
    "aia_v9_eve": ("aia_v9_eve.csv", "AIA V9, EVE-normalised (demregpy aia_trespv9_en.dat)"),
}

DEFAULT_TABLE = "aia_v10_eve"


@dataclass(frozen=True)
class TemperatureResponse:
    """A temperature response table K_c(log T).

    Attributes
    ----------
    logt : ndarray, shape (nT,)
        log10(T / K), strictly increasing.
    values : ndarray, shape (nchan, nT)
        Response in DN cm^5 s^-1 pixel^-1 (must be > 0 where it is interpolated).
    channels : tuple of str
        Channel names, e.g. ``("A94", ..., "A335")``.
    name : str
        Table name written into output headers (shipped name or file name).
    sha256 : str
        SHA-256 of the table file, for provenance.
    """

    logt: np.ndarray
    values: np.ndarray
    channels: tuple[str, ...]
    name: str
    sha256: str = ""
    description: str = field(default="")

    def at(self, logt: Sequence[float]) -> np.ndarray:
        """Interpolate log-linearly (as SSW ``aia_sparse_em_init``) onto a log T grid.

        Parameters
        ----------
        logt : array_like
            Target grid, inside the table's range.

        Returns
        -------
        ndarray, shape (nchan, len(logt))

        Examples
        --------
        >>> from fastinv.dem import load_response
        >>> k = load_response().at([5.9, 6.3])
        >>> k.shape
        (6, 2)
        """
        grid = np.asarray(logt, dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
            raise ValueError("logt must be a non-empty 1-d array of finite values")
        lo, hi = self.logt[0], self.logt[-1]
        if grid.min() < lo - 1e-6 or grid.max() > hi + 1e-6:
            raise ValueError(
                f"logt {grid.min():.3f}..{grid.max():.3f} is outside the table {self.name!r} ({lo:.3f}..{hi:.3f})"
            )
        out = np.empty((self.values.shape[0], grid.size))
        with np.errstate(divide="ignore"):
            logk = np.log10(self.values)
        for c in range(self.values.shape[0]):
            out[c] = 10.0 ** np.interp(grid, self.logt, logk[c])
        return out


def _parse_csv(text: str, name: str, sha: str, description: str = "") -> TemperatureResponse:
    rows = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(rows) < 3:
        raise ValueError(f"response table {name!r}: expected a header line and >= 2 data rows")
    header = [h.strip() for h in rows[0].split(",")]
    if len(header) < 2 or header[0].lower() != "logt":
        raise ValueError(
            f"response table {name!r}: the first column must be 'logt' (header 'logt,A94,A131,...'), got {rows[0]!r}"
        )
    try:
        data = np.array([[float(v) for v in r.split(",")] for r in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"response table {name!r}: non-numeric value ({exc})") from None
    if data.ndim != 2 or data.shape[1] != len(header):
        raise ValueError(f"response table {name!r}: every row needs {len(header)} values")
    logt, values = data[:, 0], data[:, 1:].T.copy()
    if not np.all(np.isfinite(data)):
        raise ValueError(f"response table {name!r}: NaN/inf values")
    if np.any(np.diff(logt) <= 0):
        raise ValueError(f"response table {name!r}: logt must be strictly increasing")
    if np.any(values <= 0):
        raise ValueError(
            f"response table {name!r}: responses must be > 0 (log-linear "
            "interpolation); replace zeros by a tiny positive value"
        )
    return TemperatureResponse(
        logt=logt, values=values, channels=tuple(header[1:]), name=name, sha256=sha, description=description
    )


def load_response(table: Union[str, Path, None] = None) -> TemperatureResponse:
    """Load a shipped response table by name, or a CSV file.

    Parameters
    ----------
    table : str or path, optional
        One of :data:`SHIPPED_TABLES` (default ``"aia_v10_eve"``), or the path of a CSV file
        with a header ``logt,<chan>,...`` (``#`` comment lines allowed), responses in
        DN cm^5 s^-1 pixel^-1, channels in the order 94, 131, 171, 193, 211, 335.

    Returns
    -------
    TemperatureResponse

    Examples
    --------
    >>> from fastinv.dem import load_response
    >>> r = load_response("aia_v10_eve")
    >>> r.values.shape, r.channels[0]
    ((6, 101), 'A94')
    """
    if table is None:
        table = DEFAULT_TABLE
    if isinstance(table, str) and table in SHIPPED_TABLES:
        fname, desc = SHIPPED_TABLES[table]
        raw = resources.files("fastinv").joinpath("data", fname).read_bytes()
        return _parse_csv(raw.decode(), table, hashlib.sha256(raw).hexdigest(), desc)
    path = Path(table)
    if not path.is_file():
        raise ValueError(
            f"unknown response table {str(table)!r}: use one of {sorted(SHIPPED_TABLES)} or the path of a CSV file"
        )
    raw = path.read_bytes()
    return _parse_csv(raw.decode(), path.name, hashlib.sha256(raw).hexdigest(), str(path))
