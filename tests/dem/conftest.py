"""Fixtures of the DEM tests."""

from __future__ import annotations

import pytest
from fastinv.dem import BasisPursuit


@pytest.fixture(scope="session")
def bp() -> BasisPursuit:
    """The default (Cheung et al. 2015 / SSW V1.001) Basis Pursuit set-up."""
    return BasisPursuit()
