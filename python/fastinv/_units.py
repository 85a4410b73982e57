"""Plain float64 arrays from numbers, arrays or astropy Quantities."""
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
        A value that is not numeric.
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
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be numeric") from exc
