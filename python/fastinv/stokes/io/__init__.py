"""Readers of spectropolarimetric observations: Hinode SOT/SP level-1 slit files
(:mod:`.hinode`) and DKIST ViSP level-1 frames or ``dkist`` datasets (:mod:`.visp`)."""
