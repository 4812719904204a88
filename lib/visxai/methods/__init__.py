"""Algorithms: one module per method (pixel_invariance, agf, tio, fill_blanks, baselines)."""
