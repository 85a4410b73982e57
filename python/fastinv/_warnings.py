"""fastinv's warnings: one class to filter on, and one helper that points at the user's call."""

from __future__ import annotations

import warnings

__all__ = ["FastinvUserWarning", "warn_user"]


class FastinvUserWarning(UserWarning):
    """Something in the user's data or arguments deserves attention, but the run goes on."""


def warn_user(message: str, stacklevel: int = 3) -> None:
    """Warn with :class:`FastinvUserWarning` (``stacklevel`` 3: the caller of our caller)."""
    warnings.warn(message, FastinvUserWarning, stacklevel=stacklevel)
