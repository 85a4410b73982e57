"""Stokes inversion with trained networks.

- :mod:`.network` -- :class:`StokesNet` (a model file and its card) and the wavelength
  resampler;
- :mod:`.frames` -- :class:`FrameInverter` (one frame at a time, low latency, a watched
  folder) and :func:`invert_files` (whole Hinode SP / ViSP maps);
- :mod:`.continuum` -- the quiet-Sun continuum of a map;
- :mod:`.output` -- level-2 FITS files and quicklook PNGs;
- :mod:`.evaluate` -- accuracy against held-out synthetic profiles and lightweaver.
"""
