"""The two controls a claim that ranks explanations or models runs in the same notebook run.

* :func:`randomized_model`: the model-randomisation sanity check of Adebayo et al. (2018),
  "Sanity checks for saliency maps" (NeurIPS), Sec. 3.1: the same protocol on a copy of the
  model whose learnable weights are re-initialised ("full" randomisation; ``cascade=k``
  re-initialises only the last ``k`` parameterised layers, their cascading variant). A claim
  whose verdict is the same for the randomised model is ``uninformative``
  (:func:`visxai.stats.verdict_controlled`).
* :func:`random_saliency`: a random-saliency baseline, i.i.d. uniform maps (seeded), which any
  explanation that carries information should beat.

Written by hand: the re-initialisation walk (torch's ``reset_parameters`` does the per-layer
work) and the seeded uniform maps.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["randomized_model", "random_saliency"]


def _resettable(model: nn.Module) -> list[nn.Module]:
    return [
        m
        for m in model.modules()
        if hasattr(m, "reset_parameters")
        and any(p is not None for p in m.parameters(recurse=False))
    ]


@torch.no_grad()
def randomized_model(model: nn.Module, seed: int = 0, cascade: int | None = None) -> nn.Module:
    """A deep copy of ``model`` with re-initialised weights (Adebayo et al. 2018, Sec. 3.1).

    Every module with ``reset_parameters`` and its own parameters is reset with torch's default
    initialiser under ``torch.manual_seed(seed)``; batch-norm running statistics are reset too.
    ``cascade=k`` resets only the last ``k`` such modules (the cascading randomisation, top
    layers first). The copy is in eval mode with ``requires_grad`` as in ``model``; the original
    is untouched. Raises ``ValueError`` for a model with no resettable layer.

    The re-initialisation draws from ``torch.manual_seed(seed)``: an *untrained* model that was
    itself built right after ``torch.manual_seed(seed)`` gets its own weights back (a trained
    model does not), so tests on untrained models should use another seed.
    """
    clone = copy.deepcopy(model)
    layers = _resettable(clone)
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no layer with reset_parameters(): nothing to randomise"
        )
    if cascade is not None:
        if cascade < 1:
            raise ValueError(f"cascade must be >= 1 layers, got {cascade}")
        layers = layers[-cascade:]
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        for m in layers:
            m.reset_parameters()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.reset_running_stats()
    finally:
        torch.random.set_rng_state(state)
    return clone.eval()


def random_saliency(
    shape: tuple[int, ...], seed: int = 0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Uniform [0, 1) maps of ``shape`` (e.g. ``(N, H, W)``), the same for one seed everywhere."""
    if any(int(s) <= 0 for s in shape):
        raise ValueError(f"random_saliency needs a positive shape, got {tuple(shape)}")
    g = torch.Generator().manual_seed(seed)
    return torch.rand(tuple(int(s) for s in shape), generator=g).to(device)
