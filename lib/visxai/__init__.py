"""visxai: a reproducible companion for four papers on what vision models learn.

Pixel Invariance (Sammani et al.), Attribution Guided Factorization (Gur et al., AAAI 2021),
transformation-invariant optimisation (Li et al.) and Fill in the Blanks (2024).
The library holds the algorithms; the notebooks under ``notebooks/`` configure, call and plot.
"""

__version__ = "0.1.0"
