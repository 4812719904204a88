"""Explaining self-supervised models with nearest neighbours (notebook 02 / AGF: Gur et al.,
AAAI 2021, Algorithm 2).

An SSL network ``M = phi_tau o phi_F`` has no dataset classes, only its own task's classifier
``phi_tau`` (rotations for RotNet, clusters for SeLa / SCAN). Algorithm 2 picks the class to
explain as follows:

1. ``L_I = phi_F(I)``: the penultimate-layer activations of the image;
2. ``L = {phi_F(J) | J in S}`` for a reference set ``S`` (a *bank* of latents);
3. ``L_N = argmin_{L in L} ||L_I - L||``, the nearest neighbour (Euclidean);
4. ``S_I = L_I - L_N`` to emphasise what is unique to ``I``;
5. ``v = phi_tau(S_I)``, 6. ``t = argmax v``;
7. explain ``M`` on ``I`` for class ``t`` (Algorithm 1 = AGF, or any other method).

Table 4 compares this (``"delta"``) with two alternatives: ``"sigma"`` adds the neighbour
(``S_I = L_I + L_N``) and ``"without"`` ignores it (``S_I = L_I``, i.e. the SSL model's own
prediction). Any model whose output is a final ``nn.Linear`` works: :func:`penultimate_split`
finds that layer, ``phi_F`` is "everything before it" (its input, captured with a forward
pre-hook) and ``phi_tau`` is the layer itself, so the same code serves the RotNet, the project's
supervised classifiers (the "Supervised" row of Table 4) and torchvision models.

The reference set must not contain the explained images (or pass ``exclude``), otherwise each
image is its own neighbour at distance 0. Written by hand (no library implements Algorithm 2);
the explanation itself is delegated to :func:`visxai.methods.explain.explain`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .explain import explain

__all__ = [
    "VARIANTS",
    "SSLTargets",
    "penultimate_split",
    "latent_bank",
    "ssl_targets",
    "explain_ssl",
]

VARIANTS = ("delta", "sigma", "without")


def penultimate_split(model: nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Linear]:
    """``(phi_F, phi_tau)`` for a model whose last module call is an ``nn.Linear`` head.

    ``phi_F(x)`` runs the model and returns the head's input (flattened); ``phi_tau`` is the head.
    Raises ``ValueError`` if the model's last registered module is not a Linear layer.
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError(
                f"{type(model).__name__} has no nn.Linear head; pass embed= and head= explicitly"
            )
        head = linears[-1]

    def embed(x: torch.Tensor) -> torch.Tensor:
        store: dict[str, torch.Tensor] = {}

        def grab(_mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            store["z"] = inputs[0]

        handle = head.register_forward_pre_hook(grab)
        try:
            out = model(x)
        finally:
            handle.remove()
        if "z" not in store:
            raise ValueError("the head was not called during the forward pass")
        z = store["z"].flatten(1)
        # sanity check: the head must be the model's last operation
        if not torch.allclose(head(z), out.flatten(1), atol=1e-4, rtol=1e-4):
            raise ValueError(
                f"{type(model).__name__}: the last nn.Linear is not the final layer; "
                "pass embed= and head="
            )
        return z

    return embed, head


@torch.no_grad()
def latent_bank(
    embed: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``phi_F`` of every reference image, ``[M, D]`` (Algorithm 2, line 2)."""
    if images.dim() != 4:
        raise ValueError(f"reference images must be [M,C,H,W], got {tuple(images.shape)}")
    outs = []
    for i in range(0, len(images), batch_size):
        xb = images[i : i + batch_size]
        if device is not None:
            xb = xb.to(device)
        outs.append(embed(xb).detach().cpu())
    return torch.cat(outs)


@dataclass
class SSLTargets:
    """Per image: the class to explain, the neighbour's index in the bank, and ``v``
    (Alg. 2, lines 3-6)."""

    target: torch.Tensor  # [B] int64
    neighbour: torch.Tensor  # [B] int64 (-1 for "without")
    logits: torch.Tensor  # [B, K]


@torch.no_grad()
def ssl_targets(
    embed: Callable[[torch.Tensor], torch.Tensor],
    head: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    bank: torch.Tensor,
    variant: str = "delta",
    exclude: torch.Tensor | None = None,
) -> SSLTargets:
    """Algorithm 2, lines 1-6: the SSL class ``t`` per image for ``variant`` in ``VARIANTS``.

    ``exclude`` ``[B]`` gives, per image, a bank index that may not be its neighbour (the image
    itself when it is part of the reference set), or -1.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    li = embed(x).detach().flatten(1)
    bank = bank.to(li.device, li.dtype)
    if bank.dim() != 2 or bank.shape[1] != li.shape[1]:
        raise ValueError(f"bank must be [M,{li.shape[1]}] latents, got {tuple(bank.shape)}")
    if variant == "without":
        nn_idx = torch.full((len(x),), -1, dtype=torch.int64)
        s = li
    else:
        d = torch.cdist(li, bank)
        if exclude is not None:
            ex = torch.as_tensor(exclude, device=d.device).long()
            rows = torch.nonzero(ex >= 0).flatten()
            d[rows, ex[rows]] = float("inf")
        nn_idx = d.argmin(dim=1)
        ln = bank[nn_idx]
        s = li - ln if variant == "delta" else li + ln
        nn_idx = nn_idx.cpu()
    v = head(s)
    return SSLTargets(v.argmax(dim=1).cpu(), nn_idx, v.detach().cpu())


def explain_ssl(
    model: nn.Module,
    x: torch.Tensor,
    bank: torch.Tensor,
    variant: str = "delta",
    method: str = "agf",
    embed: Callable[[torch.Tensor], torch.Tensor] | None = None,
    head: Callable[[torch.Tensor], torch.Tensor] | None = None,
    exclude: torch.Tensor | None = None,
    explain_fn: Callable[..., torch.Tensor] | None = None,
    **kwargs,
) -> tuple[torch.Tensor, SSLTargets]:
    """Algorithm 2 end to end: ``(maps [B,H,W], targets)``; ``method`` is any ``explain`` method.

    ``embed``/``head`` default to :func:`penultimate_split`; ``bank`` comes from
    :func:`latent_bank` with the same ``embed``. Extra ``kwargs`` go to the explanation method.
    """
    if embed is None or head is None:
        e, h = penultimate_split(model)
        embed, head = embed or e, head or h
    tg = ssl_targets(embed, head, x, bank, variant=variant, exclude=exclude)
    maps = (explain_fn or explain)(model, x, tg.target.to(x.device), method=method, **kwargs)
    return maps, tg
