"""The one units rule of fastinv's Python layer.

Every physical argument may be a plain number/array in the documented unit or an astropy
Quantity of any convertible unit; :func:`to_float_array` turns either into float64 in that
unit (the C++ core takes plain arrays). Results: functions that return one physical map
(``StokesNet.predict``) return Quantities; result containers (``BPResult``, ME and LTE
profiles) hold plain arrays in the units their docstrings state, with the units in the FITS
files they write.
"""

from __future__ import annotations

import numpy as np


def to_float_array(value, unit: str | None, what: str) -> np.ndarray:
    """``value`` as float64, converted to ``unit`` when it is an astropy Quantity.

    Parameters
    ----------
    value : number, array_like or astropy.units.Quantity
    unit : str or None
        Target unit of a Quantity (None or "" for dimensionless).
    what : str
        Names the quantity in error messages, e.g. ``"ME parameter 'B'"``.

    Raises
    ------
    ValueError
        A Quantity whose unit does not convert to ``unit``.
    TypeError
        A value that is not numeric, or complex (its imaginary part would be lost).

    Examples
    --------
    >>> import astropy.units as u
    >>> to_float_array(630.25 * u.nm, "Angstrom", "wavelength")
    array(6302.5)
    >>> to_float_array([1, 2], "Angstrom", "wavelength")
    array([1., 2.])
    """
    try:
        import astropy.units as u
    except ImportError:  # pragma: no cover - astropy is a run-time dependency
        u = None
    if u is not None and isinstance(value, u.Quantity):
        target = u.Unit(unit) if unit else u.dimensionless_unscaled
        try:
            return np.asarray(value.to_value(target), dtype=np.float64)
        except u.UnitConversionError as exc:
            raise ValueError(f"{what}: cannot convert {value.unit} to {unit or 'dimensionless'}") from exc
    if np.iscomplexobj(value):
        raise TypeError(f"{what} must be real, got complex values")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be numeric") from exc
