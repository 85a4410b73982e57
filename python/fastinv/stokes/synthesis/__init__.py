"""Stokes forward models and what they are built from.

- :mod:`.lines` (line registry, Zeeman patterns), :mod:`.voigt` (Faddeeva, Voigt-Faraday),
  :mod:`.instrument` (LSF, sampling, noise of Hinode SP and DKIST ViSP);
- :mod:`.milne_eddington` and :mod:`.lte` (synthesis in C++), :mod:`.atmospheres` (model
  atmospheres HSRA, FAL-C, Maltby M and random solar populations), :mod:`.sampling`
  (random Milne-Eddington parameters);
- :mod:`.training_sets` (synthetic training sets: generation, files, the reader and the
  network targets), :mod:`.lightweaver_reference` (an independent code for cross-checks).
"""
