"""Measurement helpers behind :func:`engine.features.analyze_features`: band layouts and spectral
reductions (:mod:`.spectrum`), YIN F0 (:mod:`.f0`), reverberation from free decays (:mod:`.reverb`),
stereo coherence (:mod:`.stereo`) and series reduction / percentiles (:mod:`.dynamics`)."""
