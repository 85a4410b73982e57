"""Shipped AIA temperature responses vs demregpy's IDL save files (the independent source)."""

from __future__ import annotations

import numpy as np
import pytest
from fastinv.dem import SHIPPED_TABLES, load_response

DAT = {
    "aia_v10_eve": "aia_tresp_en.dat",
    "aia_v10_eve_noblend": "aia_tresp_en_nb.dat",
    "aia_v9_eve": "aia_trespv9_en.dat",
}


def _dat(name):
    from fastinv import datasets

    try:
        path = datasets.demregpy_file(f"demregpy/data/{DAT[name]}")
    except OSError as exc:  # no network and no cache
        pytest.skip(f"demregpy wheel not obtainable: {exc}")
    from scipy.io import readsav

    return readsav(str(path))


@pytest.mark.parametrize("name", sorted(SHIPPED_TABLES))
def test_shipped_table_equals_demregpy_dat(name):
    ref = _dat(name)
    table = load_response(name)
    assert table.channels == tuple(c.decode() for c in ref["channels"])
    np.testing.assert_allclose(table.logt, np.asarray(ref["logt"], dtype=np.float64), rtol=1e-12, atol=0)
    np.testing.assert_allclose(table.values, np.asarray(ref["tr"], dtype=np.float64), rtol=1e-12, atol=0)
    assert table.values.shape == (6, 101)


def test_v10_peaks_match_published_check_values():
    # Peaks of the V10 EVE table quoted in the research note (3 significant digits).
    t = load_response("aia_v10_eve")
    peaks = {0: (6.85, 3.517e-27), 2: (5.90, 1.210e-24), 3: (6.15, 6.526e-25), 4: (6.25, 1.910e-25)}
    for c, (lt, val) in peaks.items():
        j = int(np.argmax(np.where(t.logt > 5.5, t.values[c], 0)))
        assert abs(t.logt[j] - lt) < 1e-6
        assert t.values[c, j] == pytest.approx(val, rel=1e-3)


def test_log_linear_interpolation():
    t = load_response()
    grid = np.array([5.5, 5.525, 6.3, 7.19])
    got = t.at(grid)
    for c in range(6):
        for g, v in zip(grid, got[c]):
            j = np.searchsorted(t.logt, g) - 1
            f = (g - t.logt[j]) / (t.logt[j + 1] - t.logt[j])
            ref = np.exp((1 - f) * np.log(t.values[c, j]) + f * np.log(t.values[c, j + 1]))
            assert v == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="outside"):
        t.at([3.5])


def test_user_csv(tmp_path):
    t = load_response()
    p = tmp_path / "mine.csv"
    lines = ["# my table", "logt," + ",".join(t.channels)]
    lines += [f"{float(lt)!r}," + ",".join(repr(float(v)) for v in t.values[:, j] * 2) for j, lt in enumerate(t.logt)]
    p.write_text("\n".join(lines))
    u = load_response(p)
    np.testing.assert_array_equal(u.values, 2 * t.values)
    assert u.name == "mine.csv" and len(u.sha256) == 64
    bad = tmp_path / "bad.csv"
    bad.write_text("temp,a\n1,2\n2,3\n")
    with pytest.raises(ValueError, match="logt"):
        load_response(bad)
    bad.write_text("logt,a\n1,2\n1,3\n")
    with pytest.raises(ValueError, match="increasing"):
        load_response(bad)
    with pytest.raises(ValueError, match="unknown response table"):
        load_response("no_such_table")
