"""Session fixtures shared by the Stokes reader and inversion tests (registered with
``pytest_plugins = ["_stokes_fixtures"]`` in those modules; the simulator's first run costs
seconds, so its files are made once)."""

from __future__ import annotations

import pytest
from _stokes_files import simulate_visp


@pytest.fixture(scope="session")
def visp_raw(tmp_path_factory):
    """dkist-data-simulator ViSP files (random data) of a 3-step, 12-pixel raster."""
    pytest.importorskip("dkist_data_simulator")
    return simulate_visp(tmp_path_factory.mktemp("visp_raw"), 3, 12)
