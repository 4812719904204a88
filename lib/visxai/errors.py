"""The project's exceptions that cross layers (no imports from the project).

Library code raises these (never ``SystemExit``); ``cli`` and ``distributed`` turn them into a
one-line message and an exit status.
"""

from __future__ import annotations

__all__ = ["UnsupportedLayerError"]


class UnsupportedLayerError(TypeError):
    """A module (or an operation between modules) that the relevance rules do not cover."""
