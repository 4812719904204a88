"""Algorithms: one module per method (pixel_invariance, agf, tio, fill_blanks, baselines).

Importing the package fills the method registry (:mod:`visxai.methods.registry`) of notebook 02
/ AGF: first the baselines, then AGF, which is the registry's (the paper's) order.
"""

# isort: off
from . import baselines  # noqa: F401  (registers the baselines, in the paper's order)
from . import agf  # noqa: F401  (registers AGF, the paper's last column)

# isort: on
from .explain import explain
from .registry import METHODS, Method, get_method, method_names, register

__all__ = ["METHODS", "Method", "explain", "get_method", "method_names", "register"]
