"""Cache of weight-derived tensors (|W|, W+, W-, the all-ones response) between explanations.

AGF propagates with |theta| at every layer (Eqs. 9-10); recomputing |W| on each call costs a
full pass over the weights (550 MB for VGG-19, most of it in the first Linear layer). The cache
keeps one derived tensor per (weight tensor, kind) and recomputes it whenever the weight changes:
an entry is valid only while the weight's ``_version`` counter (bumped by every in-place write:
``load_state_dict``, optimiser steps, ``with torch.no_grad(): w.mul_(2)``), its ``data_ptr``
(``model.to(...)``, ``w.data = ...``), shape, stride, dtype and device are those seen when the
entry was made. Entries are keyed weakly by the tensor object (``WeakIdKeyDictionary``): they go
when the model goes. Writes through ``w.data`` (``w.data.copy_(...)``) bypass the version
counter and are NOT detected: call ``clear_weight_cache()`` after such a write.

The cache is on by default; it costs about the weights' own memory (|W| of every layer, plus
W+/W- of the image layer). Switch it off with ``set_weight_cache(False)`` or, for a block,
``with weight_cache(False): ...``. Results are identical with and without it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch.utils.weak import WeakIdKeyDictionary

_STORE: WeakIdKeyDictionary = WeakIdKeyDictionary()
_ENABLED = True


def set_weight_cache(enabled: bool) -> bool:
    """Switch the cache on / off (off also empties it); returns the previous setting."""
    global _ENABLED
    previous, _ENABLED = _ENABLED, bool(enabled)
    if not _ENABLED:
        _STORE.clear()
    return previous


def weight_cache_enabled() -> bool:
    """Whether weight-derived tensors are cached."""
    return _ENABLED


@contextlib.contextmanager
def weight_cache(enabled: bool = True) -> Iterator[None]:
    """Context manager: the cache on / off for the block, the previous setting restored after."""
    previous = set_weight_cache(enabled)
    try:
        yield
    finally:
        set_weight_cache(previous)


def clear_weight_cache() -> None:
    """Drop every cached tensor (needed only after writes through ``weight.data``)."""
    _STORE.clear()


def _signature(w: torch.Tensor) -> tuple:
    return (w._version, w.data_ptr(), tuple(w.shape), w.stride(), w.dtype, w.device)


def derived(
    w: torch.Tensor, kind: object, make: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``make(w)``, cached under ``kind`` while ``w`` is unchanged (computed fresh when off)."""
    if not _ENABLED:
        return make(w)
    sig = _signature(w)
    entry = _STORE.get(w)
    if entry is None or entry[0] != sig:
        entry = (sig, {})
        _STORE[w] = entry
    values = entry[1]
    if kind not in values:
        with torch.no_grad():
            values[kind] = make(w.detach())
    return values[kind]


def abs_weight(w: torch.Tensor) -> torch.Tensor:
    """|W| (Eqs. 9-10), cached."""
    return derived(w, "abs", torch.abs)


def pos_weight(w: torch.Tensor) -> torch.Tensor:
    """W+ = max(W, 0), cached."""
    return derived(w, "pos", lambda t: t.clamp(min=0))


def neg_weight(w: torch.Tensor) -> torch.Tensor:
    """W- = min(W, 0), cached."""
    return derived(w, "neg", lambda t: t.clamp(max=0))


__all__ = [
    "abs_weight",
    "clear_weight_cache",
    "derived",
    "neg_weight",
    "pos_weight",
    "set_weight_cache",
    "weight_cache",
    "weight_cache_enabled",
]
