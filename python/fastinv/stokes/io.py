"""Training-set files: HDF5 (h5py) or FITS, written atomically, streamed in chunks.

Layout (both formats):

- ``stokes``: (N, 4, n_lambda) float32, I, Q, U, V (units of the continuum I_c).
- ``wavelength``: (n_lambda,) float64, air Angstrom.
- ``status``: (N,) uint8, 0 = ok.
- one array per parameter (``parameters/<name>`` in HDF5; columns of the ``PARAMETERS``
  binary table in FITS), shape (N,) or (N, k), with a ``unit`` attribute/TUNIT.
- metadata: HDF5 root attributes (and a ``metadata`` JSON attribute); FITS primary-header
  keywords and the full JSON in the ``METAJSON`` long-string keyword.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from fastinv.stokes.io import TrainingSetWriter, read_training_set
>>> path = os.path.join(tempfile.mkdtemp(), "t.fits")
>>> w = TrainingSetWriter(path, 2, np.array([6301.0, 6302.0]), {"B": ((), "G")}, {"model": "me"})
>>> w.write(0, np.zeros((2, 4, 2)), {"B": np.array([1.0, 2.0])}, np.zeros(2, np.uint8))
>>> w.close()
>>> read_training_set(path)["parameters"]["B"].tolist()
[1.0, 2.0]
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

__all__ = ["TrainingSetWriter", "read_training_set", "have_h5py"]


def have_h5py() -> bool:
    try:
        import h5py  # noqa: F401
    except ImportError:
        return False
    return True


def _format_for(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in (".h5", ".hdf5", ".hdf"):
        if not have_h5py():
            raise ValueError(f"{path}: writing HDF5 needs h5py (pip install h5py), "
                             "or use a .fits file name")
        return "hdf5"
    if ext in (".fits", ".fit", ".fts"):
        return "fits"
    raise ValueError(f"{path}: unknown extension {ext!r}; use .h5/.hdf5 or .fits")


class TrainingSetWriter:
    """Write a training set chunk by chunk; the file appears only on :meth:`close`.

    Parameters
    ----------
    path : str
        ``.h5``/``.hdf5`` (needs h5py) or ``.fits``.
    n : int
        Number of profiles.
    wavelength : array_like
        (n_lambda,) air Angstrom.
    parameters : dict
        ``name -> (per-profile shape, unit)``, e.g. ``{"B": ((), "G")}`` or
        ``{"temperature": ((55,), "K")}``.
    metadata : dict
        JSON-serialisable description (model, lines, instrument, seed, ranges, ...).
    """

    def __init__(self, path: str, n: int, wavelength, parameters: dict, metadata: dict) -> None:
        self.path = os.fspath(path)
        self.format = _format_for(self.path)
        self.n = int(n)
        self.wavelength = np.asarray(wavelength, dtype=np.float64)
        self.parameters = {k: (tuple(shape), str(unit)) for k, (shape, unit) in parameters.items()}
        self.metadata = dict(metadata)
        json.dumps(self.metadata)  # fail early if not serialisable
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise OSError(f"output directory {directory} does not exist")
        fd, self._tmp = tempfile.mkstemp(prefix=".fastinv-", suffix=os.path.splitext(self.path)[1],
                                         dir=directory)
        os.close(fd)
        nl = self.wavelength.size
        if self.format == "hdf5":
            import h5py

            self._h5 = h5py.File(self._tmp, "w")
            self._h5.create_dataset("stokes", (self.n, 4, nl), dtype="f4",
                                    chunks=(max(1, min(self.n, 1024)), 4, nl))
            self._h5.create_dataset("wavelength", data=self.wavelength).attrs["unit"] = "Angstrom"
            self._h5.create_dataset("status", (self.n,), dtype="u1")
            grp = self._h5.create_group("parameters")
            for k, (shape, unit) in self.parameters.items():
                grp.create_dataset(k, (self.n,) + shape, dtype="f8").attrs["unit"] = unit
        else:
            self._stokes = np.zeros((self.n, 4, nl), dtype=np.float32)
            self._status = np.zeros(self.n, dtype=np.uint8)
            self._params = {k: np.zeros((self.n,) + shape) for k, (shape, _) in self.parameters.items()}
        self._written = 0

    def write(self, start: int, stokes, params: dict, status) -> None:
        """Store profiles ``start .. start + len(stokes)``."""
        stokes = np.asarray(stokes, dtype=np.float32)
        m = stokes.shape[0]
        if start < 0 or start + m > self.n:
            raise ValueError("chunk outside the declared number of profiles")
        sl = slice(start, start + m)
        if self.format == "hdf5":
            self._h5["stokes"][sl] = stokes
            self._h5["status"][sl] = np.asarray(status, dtype=np.uint8)
            for k in self.parameters:
                self._h5["parameters"][k][sl] = np.asarray(params[k], dtype=np.float64)
        else:
            self._stokes[sl] = stokes
            self._status[sl] = status
            for k in self.parameters:
                self._params[k][sl] = params[k]
        self._written += m

    def close(self) -> None:
        """Finish the file and move it into place atomically."""
        try:
            if self.format == "hdf5":
                for k, v in self.metadata.items():
                    if isinstance(v, (str, int, float, bool)):
                        self._h5.attrs[k] = v
                self._h5.attrs["metadata"] = json.dumps(self.metadata)
                self._h5.close()
            else:
                self._write_fits()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the temporary file."""
        if self.format == "hdf5" and getattr(self, "_h5", None) is not None:
            try:
                self._h5.close()
            except Exception:  # noqa: BLE001 - already failing
                pass
        if os.path.exists(self._tmp):
            os.remove(self._tmp)

    def _write_fits(self) -> None:
        from astropy.io import fits

        primary = fits.PrimaryHDU(self._stokes)
        h = primary.header
        h["EXTNAME"] = "STOKES"
        h["BUNIT"] = ("I_c", "Stokes I, Q, U, V in units of the continuum")
        for k, v in self.metadata.items():
            if isinstance(v, (str, int, float, bool)) and len(k) <= 8:
                h[k.upper()] = v
        h["METAJSON"] = json.dumps(self.metadata)
        wl = fits.ImageHDU(self.wavelength, name="WAVELENGTH")
        wl.header["BUNIT"] = "Angstrom"
        cols = [fits.Column(name="status", format="B", array=self._status)]
        for k, (shape, unit) in self.parameters.items():
            width = int(np.prod(shape)) if shape else 1
            cols.append(fits.Column(name=k, format=f"{width}D", unit=unit or None,
                                    dim=f"({','.join(str(s) for s in shape[::-1])})" if len(shape) > 1 else None,
                                    array=self._params[k]))
        table = fits.BinTableHDU.from_columns(cols, name="PARAMETERS")
        fits.HDUList([primary, wl, table]).writeto(self._tmp, overwrite=True)


def read_training_set(path: str) -> dict:
    """Read a file written by :class:`TrainingSetWriter`.

    Returns
    -------
    dict with ``stokes``, ``wavelength``, ``status``, ``parameters`` (dict), ``units``
    (dict) and ``metadata`` (dict).
    """
    fmt = _format_for(path)
    if fmt == "hdf5":
        import h5py

        with h5py.File(path, "r") as f:
            params = {k: f["parameters"][k][()] for k in f["parameters"]}
            units = {k: f["parameters"][k].attrs.get("unit", "") for k in f["parameters"]}
            return dict(stokes=f["stokes"][()], wavelength=f["wavelength"][()],
                        status=f["status"][()], parameters=params, units=units,
                        metadata=json.loads(f.attrs["metadata"]))
    from astropy.io import fits

    with fits.open(path) as hd:
        table = hd["PARAMETERS"].data
        names = [c.name for c in hd["PARAMETERS"].columns if c.name != "status"]
        units = {c.name: c.unit or "" for c in hd["PARAMETERS"].columns if c.name != "status"}
        return dict(stokes=np.array(hd[0].data), wavelength=np.array(hd["WAVELENGTH"].data),
                    status=np.array(table["status"]),
                    parameters={k: np.array(table[k]) for k in names}, units=units,
                    metadata=json.loads(hd[0].header["METAJSON"]))
