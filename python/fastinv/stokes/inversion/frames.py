"""Invert observed Stokes files: frame by frame with preallocated buffers, whole maps, and a
watch mode that inverts ViSP raster steps as their four Stokes files appear.

A *frame* is one slit position: for DKIST ViSP one raster step, ``(4, Nλ, N_slit)`` as in the
level-1 files; for Hinode SP one slit file, ``(4, N_y, Nλ)``. :class:`FrameInverter` turns a
frame in counts into the atmosphere at the model's nodes along the slit:

1. resample to the model's wavelength grid (linear, with a coverage check);
2. divide by the quiet-Sun continuum I_c (fixed, or found in the frame by the rule of
   :mod:`fastinv.stokes.inversion.continuum`);
3. scale as the model card says, run the network with fastinv's engine into a reused
   output buffer, decode (azimuth from sin/cos 2φ, clipping).

Pixels with NaN/inf anywhere in their profile get NaN results and status 1, pixels with no
signal (mean I <= 0) status 2; the rest of the frame is unaffected.

Examples
--------
>>> from fastinv.stokes import FrameInverter                              # doctest: +SKIP
>>> inv = FrameInverter("stokes_visp.safetensors", instrument="visp")     # doctest: +SKIP
>>> res = inv.invert_frame(frame, wavelength=wl)   # frame (4, 976, 2555)  # doctest: +SKIP
>>> res.results["temperature"].shape, f"{res.latency * 1e3:.0f} ms"        # doctest: +SKIP
((7, 2555), '41 ms')
"""

from __future__ import annotations

import glob
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..._fits import open_fits
from ..._warnings import warn_user
from .continuum import continuum_levels, continuum_wavelengths, quiet_sun_level
from .me_frames import METHODS, MEMap, invert_resampled, me_inversion_for, required_window
from .me_output import ME_MISSING
from .network import Resampler, StokesNet, instrument_key

__all__ = ["FrameInverter", "FrameResult", "invert_files", "MapResult"]

#: STOKES_STATUS of the pixels of a slit position without a file.
MISSING = 3

# spectral axis of a frame and the axis along the slit, per instrument
_AXES = {"visp": (1, 2), "hinode_sp": (2, 1)}


@dataclass
class FrameResult:
    """Inversion of one frame.

    Attributes
    ----------
    results : dict of str -> numpy.ndarray (n_nodes, N_slit), float32
        Decoded quantities (units: :attr:`StokesNet.units`), NaN where status != 0.
    status : numpy.ndarray (N_slit,), uint8
    continuum : float
        I_c used [counts].
    latency : float
        Seconds from the call (or, in watch mode, from the moment the frame's last file
        was seen) to the results.
    compute : float
        Seconds spent in resampling, normalisation, network and decoding.
    step : int or None
        ViSP raster step (DINDEX3) in watch mode.
    chi2 : numpy.ndarray (N_slit,) or None
        Reduced chi^2 of the LTE re-synthesis of each pixel's atmosphere (inverter made with
        ``chi2=True``; :mod:`fastinv.stokes.inversion.resynthesis`), NaN where status != 0.
    """

    results: dict
    status: np.ndarray
    continuum: float
    latency: float
    compute: float
    step: int | None = None
    header: object = field(default=None, repr=False)
    chi2: np.ndarray | None = None
    #: The :class:`~fastinv.stokes.inversion.me.MEResult` (errors, chi2, iterations, ...) for
    #: ``method="me"`` / ``"cnn+me"``; ``results`` then holds the ME parameters (N_slit,) and
    #: ``status`` the ME status (:data:`fastinv.status.ME_INV_STATUS`).
    me: object = field(default=None, repr=False)


def _check_continuum(continuum) -> float | None:
    """A quiet-Sun I_c given by the caller: None, or a positive finite number of counts."""
    if continuum is None:
        return None
    try:
        value = float(continuum)
    except (TypeError, ValueError):
        raise TypeError(f"continuum must be a number of counts, got {continuum!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"continuum must be a positive number of counts, got {continuum!r}")
    return value


def _as_net(model, instrument: str, threads, device) -> StokesNet:
    if isinstance(model, StokesNet):
        if model.instrument != instrument:
            raise ValueError(f"the model is for {model.instrument}, not {instrument}")
        return model
    return StokesNet.load(model, instrument=instrument, device=device, threads=threads)


class FrameInverter:
    """Invert frame after frame with buffers allocated once (see the module docstring).

    Thread-safe: calls on one inverter from several threads take turns (a lock around the
    reused buffers); for parallel inversion use one inverter per thread (they may share a
    :class:`StokesNet`, which is thread-safe).

    Parameters
    ----------
    model : StokesNet, str, os.PathLike or None
        The network, a model file, or None for the shipped model of ``instrument``.
    instrument : {"visp", "hinode"}
        Sets the frame layout: ViSP ``(4, Nλ, N_slit)``, Hinode SP ``(4, N_y, Nλ)``.
    continuum : float, optional
        Fixed quiet-Sun continuum I_c [counts]; default: found in each frame.
    threads : int, optional
    device : {"cpu", "cuda"}
    wavelength_shift : float
        Added to the frames' wavelengths [A] (a correction for a header calibration that is
        off, e.g. checked against the line positions of the mean spectrum).
    method : {"cnn", "me", "cnn+me"}
        ``"cnn"``: the stratified network (default); ``"me"``: Milne-Eddington least squares
        from the classical initial guess; ``"cnn+me"``: Milne-Eddington from the ME network's
        guess (:mod:`.me_frames`). ``model`` is not used by the ME methods.
    me_options : dict, optional
        Keyword arguments of :class:`~fastinv.stokes.inversion.me.MEInversion` (``weights``,
        ``max_iterations``, ``mu``, ...) for the ME methods.
    chi2 : bool
        Also re-synthesise each pixel's atmosphere with LTE and report its chi^2
        (:class:`~fastinv.stokes.inversion.resynthesis.Resynthesis`, v_mic fitted; about four
        LTE syntheses per pixel, far more than the network itself).

    Examples
    --------
    >>> inv = FrameInverter(None, "visp")                                 # doctest: +SKIP
    >>> for res in inv.watch("/data/visp/incoming", timeout=60):          # doctest: +SKIP
    ...     print(res.step, f"{res.latency * 1e3:.0f} ms")
    """

    def __init__(
        self,
        model=None,
        instrument: str = "visp",
        continuum: float | None = None,
        threads: int | None = None,
        device: str = "cpu",
        wavelength_shift: float = 0.0,
        method: str = "cnn",
        me_options: dict | None = None,
        chi2: bool = False,
    ) -> None:
        self.instrument = instrument_key(instrument)
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        if method == "cnn":
            self.net, self.me = _as_net(model, self.instrument, threads, device), None
        else:
            self.net, self.me = None, me_inversion_for(self.instrument, method, **(me_options or {}))
        self._resynthesis = None
        if chi2:
            if self.net is None:
                raise ValueError(
                    "chi2=True re-synthesises the network's atmospheres; the ME methods report their own chi2"
                )
            from .resynthesis import Resynthesis

            self._resynthesis = Resynthesis(self.net)
        self.threads = threads
        self.wl_axis, self.slit_axis = _AXES[self.instrument]
        self.continuum = _check_continuum(continuum)
        if not np.isfinite(wavelength_shift):
            raise ValueError("wavelength_shift must be finite")
        self.wavelength_shift = float(wavelength_shift)
        self._resampler: Resampler | None = None
        self._wl_key: np.ndarray | None = None  # the grid the resampler was built for
        self._n = -1
        # invert_frame reuses one set of buffers: concurrent calls take turns
        self._lock = threading.Lock()
        #: What the last :meth:`watch` skipped: dicts of ``paths``, ``step``, ``reason``.
        self.watch_failures: list[dict] = []

    # ------------------------------------------------------------------ buffers
    def _buffers(self, n: int) -> None:
        if n == self._n:
            return
        net = self.net
        nm, nc = net._wl.size, net._channels.size
        k = net.model.output_shape[0]
        shape = [4, 0, 0]
        shape[self.wl_axis], shape[self.slit_axis] = nm, n
        self._resampled = np.empty(shape, dtype=np.float32)
        # The network input is kept in the frame's layout, (C, Nλ, N) or (C, N, Nλ), so that
        # normalisation runs over contiguous memory; the engine reads the (N, C, Nλ) view
        # through its strides (it packs its own blocks, so this costs it nothing).
        shape[0] = nc
        self._x_frame = np.empty(shape, dtype=np.float32)
        self._x = self._x_frame.transpose(2, 0, 1) if self.wl_axis == 1 else self._x_frame.transpose(1, 0, 2)
        self._y = np.empty((n, k), dtype=np.float32)
        self._n = n

    def _resampler_for(self, wavelength) -> Resampler:
        from ..._units import to_float_array

        wl = to_float_array(wavelength, "Angstrom", "wavelength").ravel() + self.wavelength_shift
        # exact comparison: grids with the same size, ends and sum still differ inside
        if self._wl_key is None or not np.array_equal(wl, self._wl_key):
            if self.me is not None:
                self._resampler = Resampler(wl, self.me.wavelength, required_window(self.me))
            else:
                self._resampler = self.net.resampler(wl)
            self._wl_key = wl.copy()
            blue, red = self._resampler.extrapolated
            model_wl = self.me.wavelength if self.me is not None else self.net._wl
            if blue > 0 or red > 0:
                warn_user(
                    f"the observed window ({wl.min():.3f}-{wl.max():.3f} A) misses {blue:.3f} A at the blue "
                    f"and {red:.3f} A at the red end of the model grid "
                    f"({model_wl[0]:.3f}-{model_wl[-1]:.3f} A): those model points take the nearest "
                    "observed (continuum) value",
                    stacklevel=5,
                )
        return self._resampler

    def frame_continuum(self, frame: np.ndarray) -> float:
        """Quiet-Sun I_c of one frame by the rule of :mod:`fastinv.stokes.inversion.continuum`."""
        i = frame[0]
        wl_axis = self.wl_axis - 1
        idx = continuum_wavelengths(i, axis=wl_axis)
        return quiet_sun_level(continuum_levels(i, idx, axis=wl_axis))

    # ------------------------------------------------------------------ one frame
    def invert_frame(self, frame, wavelength=None, continuum: float | None = None) -> FrameResult:
        """Invert one frame.

        Parameters
        ----------
        frame : numpy.ndarray or VispStep
            ViSP ``(4, Nλ, N_slit)`` / Hinode ``(4, N_y, Nλ)`` counts (a read
            :class:`~fastinv.stokes.io.visp.VispStep` carries its wavelengths).
        wavelength : array_like or Quantity
            The frame's wavelengths (Angstrom if unitless).
        continuum : float, optional
            I_c [counts] for this frame (default: the inverter's, else found in the frame).

        Returns
        -------
        FrameResult
            Arrays are new (not the reused buffers).

        Raises
        ------
        ValueError
            Wrong shape, wavelengths that do not cover the model's lines, or a ``continuum``
        that is not a positive finite number. (A frame without
            any usable continuum is not an error: all its pixels are flagged, status 1 where
            the profile has NaN/inf, else 2, and ``continuum`` is NaN.)
        """
        with self._lock:
            return self._invert_frame(frame, wavelength, _check_continuum(continuum))

    def _invert_frame(self, frame, wavelength, continuum: float | None) -> FrameResult:
        t0 = time.perf_counter()
        step = getattr(frame, "step", None)
        header = getattr(frame, "header", None)
        if hasattr(frame, "stokes"):
            wavelength = frame.wavelength if wavelength is None else wavelength
            frame = frame.stokes
        if wavelength is None:
            raise ValueError("invert_frame needs the frame's wavelengths (wavelength=...)")
        frame = np.asarray(frame)
        layout = "(4, N_lambda, N_slit)" if self.wl_axis == 1 else "(4, N_y, N_lambda)"
        if frame.ndim != 3 or frame.shape[0] != 4:
            raise ValueError(f"a {self.instrument} frame has shape {layout} (I, Q, U, V), got {frame.shape}")
        if not np.issubdtype(frame.dtype, np.number) or np.iscomplexobj(frame):
            raise TypeError(f"frame must be real numbers (counts), got {frame.dtype}")
        res = self._resampler_for(wavelength)
        if frame.shape[self.wl_axis] != res.n_in:
            raise ValueError(
                f"frame has {frame.shape[self.wl_axis]} wavelengths on axis {self.wl_axis} "
                f"({layout}) but {res.n_in} were given"
            )
        n = frame.shape[self.slit_axis]
        if self.me is None:
            self._buffers(n)
        ic = continuum if continuum is not None else self.continuum
        ic_found = True
        if ic is None:
            try:
                ic = self.frame_continuum(frame)
            except ValueError:  # no pixel with a usable continuum: flag them all, keep going
                ic, ic_found = float("nan"), False
        if self.me is not None:
            values, me_res = invert_resampled(self.me, res(frame, axis=self.wl_axis), self.wl_axis, ic, self.threads)
            t = time.perf_counter() - t0
            status = me_res.status.astype(np.uint8)
            return FrameResult(values, status, float(ic), t, t, step, header, me=me_res)
        r = res(frame, axis=self.wl_axis, out=self._resampled)
        net = self.net
        for c, s in enumerate(net._channels):
            np.multiply(r[s], net._scale[c] / np.float32(ic), out=self._x_frame[c])
            self._x_frame[c] -= net._offset[c] * net._scale[c]
        x = self._x
        # one sum per pixel finds NaN/inf anywhere in its network input
        bad = ~np.isfinite(self._x_frame.sum(axis=(0, self.wl_axis)))
        mean_i = r[0].mean(axis=self.wl_axis - 1)
        if not ic_found:
            bad = ~np.isfinite(r.sum(axis=(0, self.wl_axis)))
            mean_i = np.zeros_like(mean_i)
        nosignal = ~(mean_i > 0) & ~bad
        flagged = bad | nosignal
        if flagged.any():
            x[flagged] = 0.0
        y = net.run(x, out=self._y, threads=self.threads)
        dec = net.decode(y)
        out = {}
        for name, v in dec.items():
            a = np.ascontiguousarray(v.T)
            a[:, flagged] = np.nan
            out[name] = a
        status = np.zeros(n, dtype=np.uint8)
        status[bad] = 1
        status[nosignal] = 2
        chi2 = None
        if self._resynthesis is not None:
            observed = np.moveaxis(r, self.slit_axis, 0) / ic  # (N, 4, Nλ) on the model grid
            chi2 = self._resynthesis.chi2(observed, {k: v.T for k, v in out.items()}, threads=self.threads)
            chi2[flagged] = np.nan
        t = time.perf_counter() - t0
        return FrameResult(out, status, float(ic), t, t, step, header, chi2=chi2)

    # ------------------------------------------------------------------ watch mode
    def watch(
        self,
        directory: str | os.PathLike,
        pattern: str = "*.fits",
        timeout: float | None = 60.0,
        max_frames: int | None = None,
        poll: float = 0.1,
        stop: Callable[[], bool] | None = None,
        output_dir: str | os.PathLike | None = None,
        report: bool = False,
        settle: float = 2.0,
        overwrite: bool = False,
    ) -> Iterable[FrameResult]:
        """Invert ViSP raster steps as their four Stokes files appear in ``directory``.

        Files are polled every ``poll`` s, identified by their headers (DINDEX3/DINDEX4,
        never by name), and a step is inverted as soon as its fourth Stokes file is readable;
        files present at the start are processed first. A generator: each complete step
        yields a :class:`FrameResult` whose ``latency`` runs from the moment the step's last
        file was seen (at most ``poll`` s after it landed) to the results.

        The watch survives bad input, as a telescope's stream needs: a file still being
        written (truncated, unreadable) is retried at every scan while it changes; one that
        stays unreadable for ``settle`` s, a file that is not a ViSP frame, a second file for
        a step and Stokes already seen, and a step whose inversion or output fails are
        skipped with a warning and recorded in :attr:`watch_failures` (a dict per failure:
        ``paths``, ``step`` or None, ``reason``). Only a removed ``directory`` ends it with
        an error.

        Parameters
        ----------
        directory : path
        pattern : str
            Glob of the frame files.
        timeout : float or None
            Stop after this many seconds without a new file (None: never).
        max_frames : int, optional
            Stop after this many steps.
        poll : float
            Seconds between directory scans.
        stop : callable, optional
            Polled between scans; return True to stop.
        output_dir : path, optional
            Also write each step's result as FITS there (``step_<DINDEX3>.fits``); created
            if missing.
        report : bool
            Print each step's latency to stderr.
        settle : float
            Seconds a file (or a complete step's data) may stay unreadable at a constant size
            before it is skipped as damaged (it is tried again if it changes).
        overwrite : bool
            Allow ``output_dir`` to hold ``step_*.fits`` files already (they are replaced).

        Raises
        ------
        FileNotFoundError
            ``directory`` does not exist, or is removed while watched.
        FileExistsError
            ``output_dir`` holds results already and ``overwrite`` is False.
        ValueError
            Invalid arguments, or ``output_dir`` is ``directory``.
        """
        from ..io.visp import VispStep, read_visp_header, read_visp_step

        if self.instrument != "visp":
            raise ValueError("watch() inverts DKIST ViSP raster steps; use instrument='visp'")
        if timeout is not None and not (timeout >= 0 and np.isfinite(timeout)):
            raise ValueError(f"timeout must be None or a number of seconds >= 0, got {timeout!r}")
        if not (poll > 0 and np.isfinite(poll)):
            raise ValueError(f"poll must be a positive number of seconds, got {poll!r}")
        if not (settle >= 0 and np.isfinite(settle)):
            raise ValueError(f"settle must be a number of seconds >= 0, got {settle!r}")
        if max_frames is not None and not (isinstance(max_frames, (int, np.integer)) and max_frames >= 1):
            raise ValueError(f"max_frames must be None or an integer >= 1, got {max_frames!r}")
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"{directory} is not a directory")
        if output_dir is not None:
            if Path(output_dir).resolve() == directory.resolve():
                raise ValueError(f"{output_dir}: the output directory is the watched directory; give another one")
            old = sorted(Path(output_dir).glob("step_*.fits"))
            if old and not overwrite:
                raise FileExistsError(
                    f"{output_dir} holds results already ({old[0].name}, ...); pass overwrite=True "
                    "(command line: --overwrite) to replace them"
                )
            Path(output_dir).mkdir(parents=True, exist_ok=True)
        self.watch_failures = []

        def fail(paths, step, reason):
            warn_user(f"{', '.join(paths)}: skipped: {reason}", stacklevel=4)
            self.watch_failures.append({"paths": list(paths), "step": step, "reason": reason})

        def signature(p):  # a file is tried again when this changes
            try:
                st = os.stat(p)
                return (st.st_size, st.st_mtime_ns)
            except OSError:
                return None

        seen: dict[str, float] = {}  # path -> when its header was first readable
        unreadable: dict[str, tuple] = {}  # path -> (signature, since, skipped)
        skipped: dict[str, tuple] = {}  # path -> signature when it was skipped for good
        pending: dict[int, dict[int, str]] = {}
        failing: dict[int, tuple] = {}  # step -> (signatures, since) while its data cannot be read
        done = 0
        last_new = time.monotonic()
        frame_buf = None
        while True:
            if not directory.is_dir():
                raise FileNotFoundError(f"{directory}: the watched directory was removed")
            new = False
            for p in sorted(glob.glob(str(directory / pattern))):
                if p in seen or (p in skipped and skipped[p] == signature(p)):
                    continue
                skipped.pop(p, None)
                try:
                    h = read_visp_header(p)
                    key = (int(h["DINDEX3"]), int(h["DINDEX4"]))
                except ValueError as exc:  # a complete file that is not a ViSP frame
                    sig = signature(p)
                    old = unreadable.get(p)
                    if old is None or old[0] != sig:  # may still be landing: give it `settle` s
                        unreadable[p] = (sig, time.monotonic(), False)
                    elif time.monotonic() - old[1] > settle:
                        unreadable.pop(p)
                        skipped[p] = sig
                        fail([p], None, str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - a file still being written fails in many ways
                    sig = signature(p)
                    now = time.monotonic()
                    old = unreadable.get(p)
                    if old is None or old[0] != sig:
                        unreadable[p] = (sig, now, False)
                    elif now - old[1] > settle:
                        unreadable.pop(p)
                        skipped[p] = sig
                        fail([p], None, f"not a readable FITS file (unchanged for {settle:g} s): {exc}")
                    continue
                unreadable.pop(p, None)
                seen[p] = time.monotonic()
                new = True
                slot = pending.setdefault(key[0], {})
                if key[1] in slot:
                    skipped[p] = signature(p)
                    fail(
                        [p],
                        key[0],
                        f"same raster step and Stokes as {slot[key[1]]} (DINDEX3={key[0]}, DINDEX4={key[1]})",
                    )
                    continue
                slot[key[1]] = p
            if new:
                last_new = time.monotonic()
            for stepno in sorted(pending):
                slot = pending[stepno]
                if len(slot) < 4:
                    continue
                files = [slot[k] for k in sorted(slot)]
                t_seen = max(seen[f] for f in files)
                try:
                    step = read_visp_step(VispStep(stepno, files), out=frame_buf)
                except (OSError, ValueError, TypeError, EOFError) as exc:
                    # data still arriving after a complete header: retry while the files change
                    sigs = [signature(f) for f in files]
                    old = failing.get(stepno)
                    if old is None or old[0] != sigs:
                        failing[stepno] = (sigs, time.monotonic())
                    elif time.monotonic() - old[1] > settle:
                        del pending[stepno], failing[stepno]
                        fail(files, stepno, f"data unreadable for {settle:g} s: {exc}")
                    continue
                failing.pop(stepno, None)
                del pending[stepno]
                frame_buf = step.stokes
                try:
                    result = self.invert_frame(step)
                    result.latency = time.monotonic() - t_seen
                    result.step = stepno
                    if output_dir is not None:
                        self.write_frame(Path(output_dir) / f"step_{stepno:05d}.fits", result)
                except (OSError, ValueError, TypeError) as exc:
                    fail(files, stepno, f"inversion or output failed: {exc}")
                    continue
                if report:
                    print(
                        f"step {stepno}: {result.latency * 1e3:.1f} ms (inversion {result.compute * 1e3:.1f} ms)",
                        file=sys.stderr,
                    )
                done += 1
                yield result
                if max_frames is not None and done >= max_frames:
                    return
            if stop is not None and stop():
                return
            if timeout is not None and time.monotonic() - last_new > timeout:
                return
            time.sleep(poll)

    def write_frame(self, path, result: FrameResult) -> Path:
        """Write one frame's result as FITS (an nx = 1 map; celestial WCS from a ViSP header)."""
        from .output import write_inversion_fits

        wcs = None
        if result.header is not None and self.instrument == "visp":
            from ..io.visp import visp_map_wcs

            wcs = visp_map_wcs(result.header)
        if self.me is not None:
            return self._write_me_frame(path, result, wcs)
        maps = {k: v[:, :, None] for k, v in result.results.items()}
        cards = self.net.summary_cards()
        if np.isfinite(result.continuum):  # NaN when no pixel had a usable continuum
            cards["ICONT"] = (result.continuum, "[counts] quiet-Sun continuum used (I_c)")
        chi2 = None if result.chi2 is None else result.chi2[:, None]
        return write_inversion_fits(
            path, maps, result.status[:, None], self.net._nodes, self.net.units, wcs, cards, chi2=chi2
        )

    def _write_me_frame(self, path, result: FrameResult, wcs) -> Path:
        from .me_output import me_config_cards, write_me_fits

        r = result.me
        col = lambda a: np.asarray(a)[:, None]  # noqa: E731  (N_slit,) -> (ny, nx = 1)
        cards = me_config_cards(self.me, self.method)
        if np.isfinite(result.continuum):
            cards["ICONT"] = (result.continuum, "[counts] quiet-Sun continuum used (I_c)")
        return write_me_fits(
            path,
            {k: col(v.value) for k, v in r.parameters.items()},
            {k: col(v.value) for k, v in r.errors.items()},
            r.correlations[:, None],
            r.chi2[:, None],
            col(r.iterations),
            col(r.restarts),
            col(r.status),
            wcs,
            cards,
            self.me.free,
        )


# --------------------------------------------------------------------------------------
# whole maps (the CLI)


@dataclass
class MapResult:
    """A map: quantity -> (nodes, ny, nx), status (ny, nx), the continuum, the WCS, and the
    re-synthesis chi^2 (ny, nx) when asked for."""

    results: dict
    status: np.ndarray
    continuum: float
    wcs: object
    frames: int
    seconds: float
    #: ``method="me"`` / ``"cnn+me"``: the ME maps (:class:`.me_frames.MEMap`; ``results`` is
    #: then empty and ``status`` the ME status) and the :class:`FrameInverter` that made them.
    me: object = None
    inverter: object = None
    chi2: np.ndarray | None = None


def expand_inputs(paths: Sequence) -> list[str]:
    """The files of a map given as files, directories (their ``*.fits``) or a DKIST ``.asdf``."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if p.lower().endswith(".asdf"):  # a DKIST dataset: its FITS files (needs dkist)
            from ..io.visp import visp_dataset_files

            out += visp_dataset_files(p)
        elif os.path.isdir(p):
            found = sorted(glob.glob(os.path.join(p, "*.fits")) + glob.glob(os.path.join(p, "*.fits.gz")))
            if not found:
                raise FileNotFoundError(f"{p}: no *.fits files in this directory")
            out += found
        elif not os.path.exists(p):
            raise FileNotFoundError(f"{p}: no such file")
        else:
            out.append(p)
    if not out:
        raise ValueError("no input files")
    return out


def invert_files(
    paths: Sequence,
    instrument: str,
    model=None,
    continuum: float | None = None,
    threads: int | None = None,
    progress: Callable[[int], None] | None = None,
    total: Callable[[int], None] | None = None,
    wavelength_shift: float = 0.0,
    method: str = "cnn",
    me_options: dict | None = None,
    chi2: bool = False,
) -> MapResult:
    """Invert one map: Hinode SP slit files, or the per-Stokes files of a ViSP raster.

    The map's quiet-Sun continuum is found first over all its frames (a first pass that reads
    only Stokes I; rule in :mod:`fastinv.stokes.inversion.continuum`) unless ``continuum`` is given, so
    all frames share one I_c.

    Parameters
    ----------
    paths : sequence of paths
        Files (or directories of ``*.fits``, or for ViSP a DKIST dataset's ``.asdf`` file,
        read with the optional ``dkist`` package) of ONE map.
    instrument : {"hinode", "visp"}
    model : StokesNet, path or None (shipped model)
    continuum : float, optional
        I_c in counts.
    wavelength_shift : float
        Added to the files' wavelengths [A] (see :class:`FrameInverter`).
    method, me_options :
        As :class:`FrameInverter`.
    chi2 : bool
        Also map the chi^2 of each pixel's LTE re-synthesis (``method="cnn"``; see
        :class:`FrameInverter`).
    progress : callable, optional
        Called with the number of frames done in the current pass.
    total : callable, optional
        Called with (number of frames, pass name) at the start of each pass: "continuum"
        (only when ``continuum`` is not given; reads Stokes I) and "invert".

    Returns
    -------
    MapResult
    """
    t0 = time.perf_counter()
    key = instrument_key(instrument)
    continuum = _check_continuum(continuum)
    paths = expand_inputs(paths)
    inv = FrameInverter(
        model, key, threads=threads, wavelength_shift=wavelength_shift, method=method, me_options=me_options, chi2=chi2
    )
    if key == "hinode_sp":
        from ..io.hinode import hinode_map_wcs, read_hinode_slit, slit_columns, sort_slits

        headers = []
        for p in paths:
            with open_fits(p) as hdul:
                headers.append(next((h for h in hdul if h.data is not None), hdul[0]).header.copy())
        order = sort_slits(headers, paths)
        paths = [paths[k] for k in order]
        headers = [headers[k] for k in order]
        columns = slit_columns(headers, paths)
        read = lambda p: read_hinode_slit(p)  # noqa: E731
        intensity = lambda p: read_hinode_slit(p).stokes[0]  # noqa: E731  (N_y, Nλ)
        wl_axis_i = 1
    else:
        from ..io.visp import group_visp_files, read_visp_step, visp_map_wcs

        steps = group_visp_files(paths)
        read = lambda s: read_visp_step(s)  # noqa: E731

        def intensity(s):
            with open_fits(s.paths[0]) as hdul:
                d = np.asarray(next(h for h in hdul if h.data is not None).data, dtype=np.float32)
            return d[0] if d.ndim == 3 else d  # (Nλ, N_slit)

        paths = steps
        columns = list(range(len(steps)))
        wl_axis_i = 0
    if continuum is None:
        if total is not None:
            total(len(paths), "continuum")
        levels = []
        for k, p in enumerate(paths):
            i = intensity(p)
            idx = continuum_wavelengths(i, axis=wl_axis_i)
            levels.append(continuum_levels(i, idx, axis=wl_axis_i))
            if progress is not None:
                progress(k + 1)
        continuum = quiet_sun_level(np.concatenate(levels))
    if total is not None:
        total(len(paths), "invert")
    nx = columns[-1] + 1
    missing = sorted(set(range(nx)) - set(columns))
    if missing:
        warn_user(
            f"{len(missing)} of {nx} slit positions have no file (map columns {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}): their pixels are NaN with status "
            f"{MISSING if method == 'cnn' else ME_MISSING}"
        )
    results: dict[str, np.ndarray] = {}
    status = None
    me_map = None
    chi2_map = None
    first_header = None
    for p, x in zip(paths, columns):
        frame = read(p)
        if first_header is None:
            first_header = frame.header
        r = inv.invert_frame(frame, continuum=continuum)
        if status is None:
            ny = r.status.size
            status = np.full((ny, nx), MISSING, dtype=np.uint8)
            if r.me is not None:
                me_map = MEMap(ny, nx)
                status = me_map.status
            else:
                results = {k: np.full((v.shape[0], ny, nx), np.nan, dtype=np.float32) for k, v in r.results.items()}
            if r.chi2 is not None:
                chi2_map = np.full((ny, nx), np.nan, dtype=np.float32)
        if r.status.size != status.shape[0]:
            raise ValueError(
                f"{getattr(p, 'paths', [p])[0]}: {r.status.size} pixels along the slit, the map's "
                f"first frame has {status.shape[0]}"
            )
        if me_map is not None:
            me_map.put(x, r.me)
        else:
            for k, v in r.results.items():
                results[k][:, :, x] = v
            status[:, x] = r.status
        if chi2_map is not None:
            chi2_map[:, x] = r.chi2
        if progress is not None:
            progress(x + 1)
    if key == "hinode_sp":
        wcs = hinode_map_wcs(headers, status.shape[0], columns, paths)
    else:
        wcs = visp_map_wcs(first_header)
    return MapResult(
        results, status, float(continuum), wcs, len(paths), time.perf_counter() - t0, me_map, inv, chi2_map
    )
