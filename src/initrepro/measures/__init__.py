"""Measurements of a network that several papers use: Jacobian spectra, filter symmetry."""
