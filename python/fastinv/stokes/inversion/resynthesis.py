"""How well a Stokes network's atmosphere fits the data: LTE re-synthesis and chi^2.

A :class:`~fastinv.stokes.inversion.network.StokesNet` predicts T, v_LOS, B, inclination and
azimuth at a few log tau_500 nodes but does not fit the observed profiles, so nothing in
its output says whether a pixel's answer reproduces the data. :class:`Resynthesis` closes
that gap the way a classical inversion reports its fit: it turns each pixel's node values
into a full atmosphere, synthesises its Stokes profiles with fastinv's LTE code
(:class:`fastinv.stokes.LTE`) through the model's instrument (LSF and sampling), and
returns the reduced chi^2 against the observed profiles,

    chi^2 = sum over Stokes s and wavelengths l of ((S_obs - S_fit) / sigma)^2 / (4 N_l),

with ``sigma`` the noise per wavelength in units of I_c (default: the noise the model was
trained with, recorded in its card). chi^2 near 1 means the atmosphere explains the profile
down to the noise; much larger values flag pixels where the network's answer should not be
trusted (outside its training domain, unresolved structure, bad data).

From nodes to a depth grid (the HSRA grid, log tau_500 = -4.0 ... +1.4, 55 points):

- T is a natural cubic spline through the nodes (smooth like the training atmospheres;
  linear interpolation alone leaves chi^2 ~ 70 on the true node values, the spline ~ 20);
  v_LOS, B, inclination and azimuth are linear in log tau, as the training atmospheres
  were built between their own nodes;
- outside the nodes, T follows the HSRA's gradient from the outermost node (the continuum
  forms below the deepest node, log tau = 0, so a constant T there would change the
  continuum); the other quantities stay at their outermost node values;
- v_mic, which the networks do not predict, is fitted per pixel (``vmic="fit"``: four
  syntheses) or fixed; a fixed 1 km/s leaves chi^2 ~ 150 on the true node values of
  atmospheres whose v_mic is spread over the training range 0-3 km/s.

The chi^2 therefore measures the network's error plus this representation's; on
atmospheres the representation reproduces exactly it is 1 within the noise, and on the
true node values of the training distribution its median is given in
docs/stokes-inversion.md (tests/stokes/test_resynthesis.py checks both).

Examples
--------
>>> from fastinv.stokes import StokesNet                        # doctest: +SKIP
>>> from fastinv.stokes.inversion.resynthesis import Resynthesis
>>> net = StokesNet.load(instrument="hinode")                  # doctest: +SKIP
>>> rs = Resynthesis(net)                                      # doctest: +SKIP
>>> chi2 = rs.chi2(profiles, net.predict(profiles))           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..._units import to_float_array
from ..synthesis.atmospheres import Atmospheres, hsra
from ..synthesis.instrument import Instrument
from ..synthesis.lte import LTE

__all__ = ["Resynthesis", "model_instrument"]

#: v_mic [km/s] tried per pixel by ``vmic="fit"`` and the range it is kept in (the training range).
VMIC_TRIALS = (0.5, 1.5, 2.5)
VMIC_RANGE = (0.0, 3.0)

#: Quantities a network must predict for its atmosphere to be re-synthesised.
NEEDED = ("temperature", "vlos", "B", "inclination", "azimuth")

# Resolving power / LSF of the instruments the shipped models were trained for
# (fastinv.stokes.Instrument.hinode_sp and .visp).
_LSF_FWHM_MA = {"hinode_sp": lambda centre: 30.0, "visp": lambda centre: centre / 180000.0 * 1e3}


def model_instrument(net) -> Instrument:
    """The instrument a :class:`StokesNet` was trained for, on the model's wavelength grid.

    Parameters
    ----------
    net : StokesNet

    Returns
    -------
    Instrument
        The model's wavelengths with the instrument's LSF and the card's noise.

    Examples
    --------
    >>> from fastinv.stokes import StokesNet
    >>> from fastinv.stokes.inversion.resynthesis import model_instrument
    >>> model_instrument(StokesNet.load(instrument="hinode")).name
    'hinode_sp'
    """
    wl = np.asarray(net.wavelength.to_value("Angstrom"), dtype=np.float64)
    if net.instrument not in _LSF_FWHM_MA:
        raise ValueError(f"no instrument profile known for a {net.instrument!r} model (known: hinode_sp, visp)")
    fwhm = _LSF_FWHM_MA[net.instrument](float(wl.mean()))
    return Instrument(wl, fwhm, noise=float(net.card.get("noise", 1e-3)), name=net.instrument)


def _linear_matrix(grid: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """(n_grid, n_nodes) weights of linear interpolation in log tau, constant outside."""
    order = np.argsort(nodes)
    eye = np.eye(nodes.size)[order]
    return np.stack([np.interp(grid, nodes[order], row) for row in eye], axis=1)


def _spline_matrix(grid: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """(n_grid, n_nodes) weights of a natural cubic spline through the nodes, constant outside.

    The spline is linear in the node values, so it is a matrix (built once per model).
    """
    order = np.argsort(nodes)
    x = nodes[order]
    n = x.size
    h = np.diff(x)
    # second derivatives m = solve(A, B @ y), natural ends (m_0 = m_{n-1} = 0)
    a = np.zeros((n, n))
    b = np.zeros((n, n))
    a[0, 0] = a[-1, -1] = 1.0
    for i in range(1, n - 1):
        a[i, i - 1], a[i, i], a[i, i + 1] = h[i - 1], 2.0 * (h[i - 1] + h[i]), h[i]
        b[i, i - 1], b[i, i], b[i, i + 1] = 6.0 / h[i - 1], -6.0 / h[i - 1] - 6.0 / h[i], 6.0 / h[i]
    m = np.linalg.solve(a, b)
    g = np.clip(grid, x[0], x[-1])
    k = np.clip(np.searchsorted(x, g) - 1, 0, n - 2)
    t = (g - x[k]) / h[k]
    rows = np.arange(g.size)
    w = np.zeros((g.size, n))
    w[rows, k] += 1.0 - t
    w[rows, k + 1] += t
    c = h[k] ** 2 / 6.0
    w += ((1.0 - t) ** 3 - (1.0 - t))[:, None] * c[:, None] * m[k]
    w += (t**3 - t)[:, None] * c[:, None] * m[k + 1]
    out = np.empty_like(w)
    out[:, order] = w
    return out


class Resynthesis:
    """Re-synthesise a network's predicted atmospheres and measure their chi^2.

    Parameters
    ----------
    net : StokesNet
        The network whose predictions are checked; it must predict :data:`NEEDED`.
    vmic : "fit", float or Quantity
        Micro-turbulence of the re-synthesised atmospheres [km/s]. ``"fit"`` (default)
        chooses it per pixel: the best of :data:`VMIC_TRIALS` refined by the vertex of a
        parabola through chi^2 there (four syntheses per pixel instead of one).
    mu : float, optional
        cos(heliocentric angle); default the card's ``mu`` (the models are trained at 1).

    Examples
    --------
    >>> from fastinv.stokes import StokesNet
    >>> from fastinv.stokes.inversion.resynthesis import Resynthesis
    >>> rs = Resynthesis(StokesNet.load(instrument="hinode"))
    >>> float(rs.log_tau[0]), float(rs.log_tau[-1])
    (-4.0, 1.4)
    """

    def __init__(self, net, vmic="fit", mu: float | None = None) -> None:
        missing = [q for q in NEEDED if q not in net.quantities]
        if missing:
            raise ValueError(
                f"the model predicts {', '.join(net.quantities)}: re-synthesis needs {', '.join(missing)} too"
            )
        self.net = net
        if isinstance(vmic, str) and vmic == "fit":
            self.vmic: float | None = None
        else:
            self.vmic = float(to_float_array(vmic, "km/s", "vmic"))
            if not (np.isfinite(self.vmic) and self.vmic >= 0):
                raise ValueError(f'vmic must be "fit" or a non-negative speed, got {vmic!r}')
        self.mu = float(net.card.get("mu", 1.0) if mu is None else mu)
        self.instrument = model_instrument(net)
        self.lte = LTE(instrument=self.instrument)
        reference = hsra()
        self.log_tau = reference.log_tau.copy()
        nodes = np.asarray(net.nodes, dtype=np.float64)
        self._linear = _linear_matrix(self.log_tau, nodes)
        self._spline = _spline_matrix(self.log_tau, nodes)
        # T outside the nodes: the HSRA's gradient continued from the outermost node
        t_ref = reference.temperature[0]
        outside = (self.log_tau < nodes.min()) | (self.log_tau > nodes.max())
        self._t_offset = np.where(outside, t_ref - self._spline @ np.interp(nodes, self.log_tau, t_ref), 0.0)

    def _node_values(self, predictions: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for q in NEEDED:
            v = to_float_array(predictions[q], self.net.units.get(q), q)
            if v.ndim != 2 or v.shape[1] != self._linear.shape[1]:
                raise ValueError(f"{q} must have shape (N, {self._linear.shape[1]} nodes), got {v.shape}")
            out[q] = v
        return out

    def atmospheres(self, predictions: Mapping[str, np.ndarray], vmic=None) -> Atmospheres:
        """Node values (``{quantity: (N, n_nodes)}``, arrays or Quantities) -> atmospheres.

        ``vmic`` [km/s], a scalar or one value per atmosphere, defaults to the fixed value
        given at construction (1 km/s when that is ``"fit"``).
        """
        values = self._node_values(predictions)
        arrays = {q: v @ self._linear.T for q, v in values.items() if q != "temperature"}
        arrays["temperature"] = values["temperature"] @ self._spline.T + self._t_offset
        if vmic is None:
            vmic = 1.0 if self.vmic is None else self.vmic
        shape = arrays["B"].shape
        vmic = np.broadcast_to(np.asarray(vmic, dtype=np.float64).reshape(-1, 1), shape)
        return Atmospheres(self.log_tau, vmic=vmic, name="network", **arrays)

    def _chi2_at(self, atm: Atmospheres, obs: np.ndarray, sigma, threads) -> tuple[np.ndarray, np.ndarray]:
        prof, status = self.lte.synthesize(atm, mu=self.mu, add_noise=False, threads=threads, return_status=True)
        resid = (obs - prof) / sigma
        chi2 = np.einsum("nsl,nsl->n", resid, resid) / resid[0].size
        chi2[np.asarray(status) != 0] = np.nan
        return chi2, prof

    def chi2(
        self,
        stokes,
        predictions: Mapping[str, np.ndarray],
        sigma=None,
        threads: int | None = None,
        return_fit: bool = False,
    ):
        """Reduced chi^2 of each pixel's re-synthesised profiles against the observed ones.

        Parameters
        ----------
        stokes : array_like, shape (N, 4, Nλ)
            Observed I, Q, U, V / I_c on the model's wavelength grid (what
            :meth:`StokesNet.predict` takes).
        predictions : mapping
            The network's output for these profiles (:meth:`StokesNet.predict`).
        sigma : float or array_like broadcastable to (4, Nλ), optional
            Noise in units of I_c; default the model card's noise.
        threads : int, optional
        return_fit : bool
            Also return the re-synthesised profiles (N, 4, Nλ) and the v_mic used (N,).

        Returns
        -------
        numpy.ndarray (N,)
            Reduced chi^2; NaN where the prediction or the profile is not finite or the
            synthesis failed. ``(chi2, fit, vmic)`` with ``return_fit``.
        """
        obs = np.asarray(stokes, dtype=np.float64)
        nw = self.instrument.wavelength.size
        if obs.ndim != 3 or obs.shape[1:] != (4, nw):
            raise ValueError(f"stokes must have shape (N, 4, {nw}) on the model grid, got {obs.shape}")
        sigma = self.instrument.noise if sigma is None else np.asarray(sigma, dtype=np.float64)
        if not np.all(np.asarray(sigma) > 0):
            raise ValueError("sigma must be positive")
        values = self._node_values(predictions)
        n = obs.shape[0]
        chi2 = np.full(n, np.nan)
        fit = np.full(obs.shape, np.nan) if return_fit else None
        vmic_used = np.full(n, np.nan)
        good = np.all(np.isfinite(obs), axis=(1, 2))
        for v in values.values():
            good &= np.all(np.isfinite(v), axis=1)
        idx = np.flatnonzero(good)
        if idx.size:
            sub = {q: v[idx] for q, v in values.items()}
            o = obs[idx]
            trials = list(VMIC_TRIALS) if self.vmic is None else [self.vmic]
            tried_v, tried_c, profs = [], [], []
            for vm in trials:
                c, p = self._chi2_at(self.atmospheres(sub, vmic=vm), o, sigma, threads)
                tried_v.append(np.full(idx.size, vm))
                tried_c.append(c)
                profs.append(p if return_fit else None)
            if self.vmic is None:
                vertex = _parabola_vertex(np.asarray(trials), np.stack(tried_c), VMIC_RANGE)
                c, p = self._chi2_at(self.atmospheres(sub, vmic=vertex), o, sigma, threads)
                tried_v.append(vertex)
                tried_c.append(c)
                profs.append(p if return_fit else None)
            cs = np.stack(tried_c)
            best = np.argmin(np.where(np.isfinite(cs), cs, np.inf), axis=0)
            rows = np.arange(idx.size)
            chi2[idx] = cs[best, rows]
            vmic_used[idx] = np.stack(tried_v)[best, rows]
            vmic_used[idx[~np.isfinite(chi2[idx])]] = np.nan
            if fit is not None:
                fit[idx] = np.stack(profs)[best, rows]
                fit[~np.isfinite(chi2)] = np.nan
        return (chi2, fit, vmic_used) if return_fit else chi2

    def __repr__(self) -> str:
        vmic = "fit" if self.vmic is None else f"{self.vmic:g} km/s"
        return f"Resynthesis({self.net.instrument}, vmic={vmic}, mu={self.mu:g}, {self.log_tau.size} depths)"


def _parabola_vertex(x: np.ndarray, y: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Per column of y (len(x), N): the vertex of the parabola through the lowest point and
    its neighbours (x evenly spaced), clipped to ``bounds``; the lowest x where y is not convex."""
    y = np.where(np.isfinite(y), y, np.inf)
    k = np.clip(np.argmin(y, axis=0), 1, x.size - 2)
    cols = np.arange(y.shape[1])
    y0, y1, y2 = y[k - 1, cols], y[k, cols], y[k + 1, cols]
    curvature = y0 - 2.0 * y1 + y2
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = 0.5 * (y0 - y2) / curvature
    step = x[1] - x[0]
    vertex = np.where(np.isfinite(shift) & (curvature > 0), x[k] + shift * step, x[np.argmin(y, axis=0)])
    return np.clip(vertex, *bounds)
