"""The one target resolver: which class each image of a batch is explained (or optimised) for.

Every method takes ``target`` in the same forms: ``None`` (the model's top-1 class per image; needs
the logits), an ``int`` (that class for every image), or a sequence / tensor with one class per
image (one entry is broadcast to the batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["Target", "as_targets", "resolve_target"]

Target = int | Sequence[int] | torch.Tensor | None


def as_targets(
    target: int | Sequence[int] | torch.Tensor,
    n: int,
    device: torch.device | str | None = None,
    num_classes: int | None = None,
    what: str = "targets",
) -> torch.Tensor:
    """An explicit ``target`` as a long tensor ``[n]`` (one entry is broadcast to the batch);
    ``what`` names the entries in the error message (``"labels"``, ``"step budgets"``)."""
    t = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    if t.numel() == 1 and n > 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"need one target per image: got {t.numel()} {what} for {n} images")
    if num_classes is not None and bool(((t < 0) | (t >= num_classes)).any()):
        raise ValueError(f"target classes must lie in [0, {num_classes}), got {t.tolist()}")
    return t


def resolve_target(logits: torch.Tensor, target: Target) -> torch.Tensor:
    """``[B]`` classes for ``logits`` [B, K]: ``None`` is the top-1 class per image, anything else
    goes through :func:`as_targets`."""
    B, K = logits.shape
    if target is None:
        return logits.detach().argmax(1)
    return as_targets(target, B, device=logits.device, num_classes=K)
