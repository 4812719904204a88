"""Algorithm 1 (class attribution propagation with guided factorisation) on a traced model.

Paper equations: initial attribution Eq. 8, absolute influence C Eq. 9, input-agnostic A
Eq. 10, factorisation F_x, F_dx Eqs. 7, 11, input-gradient interaction M Eq. 12, residual r
Eq. 13, Delta-shift Def. 2 / Eq. 14. Choices the paper leaves open follow the authors' code
(shirgur/AGFVisualization, modules/layers.py), each marked "authors" below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .graph import Node, Trace, UnsupportedLayerError, trace
from .rules import (
    LinearOp,
    RuleSet,
    delta_shift,
    factorize,
    image_bounds,
    normalize_max,
    propagate,
    safe_divide,
    z_abs,
    z_box,
)

Target = int | Sequence[int] | torch.Tensor | None


@dataclass(frozen=True)
class AGFFlags:
    """Switches of the ablation study (Table 5); the defaults are the full method."""

    use_a: bool = True  # input-agnostic attribution A (Eq. 10)
    use_fx: bool = True  # factorisation of the activations F_x (Eq. 11)
    use_fdx: bool = True  # factorisation of the gradients F_dx (Eq. 11)
    use_m: bool = True  # input-gradient interaction M (Eq. 12)
    use_gate: bool = True  # the 1 / (1 + exp(-C)) factor on F_x + M (Eq. 13)
    residual: bool = True  # False: "only C", no residual at all (Phi = C)
    gradcam_residual: bool = False  # "r = Grad-CAM": F_x + M replaced by a Grad-CAM term (authors)


ABLATIONS: dict[str, AGFFlags] = {
    "ours": AGFFlags(),
    "only_C": AGFFlags(residual=False),
    "no_A": AGFFlags(use_a=False),
    "no_Fx": AGFFlags(use_fx=False),
    "no_Fdx": AGFFlags(use_fdx=False),
    "no_M": AGFFlags(use_m=False),
    "no_gate": AGFFlags(use_gate=False),
    "gradcam_residual": AGFFlags(gradcam_residual=True),
}


def resolve_target(logits: torch.Tensor, target: Target) -> torch.Tensor:
    """None -> top-1 class per image; int -> that class for all; sequence -> one per image."""
    B, K = logits.shape
    if target is None:
        t = logits.detach().argmax(1)
    elif isinstance(target, int):
        t = torch.full((B,), target, dtype=torch.long, device=logits.device)
    else:
        t = torch.as_tensor(target, dtype=torch.long, device=logits.device).reshape(-1)
        if t.numel() == 1 and B > 1:
            t = t.expand(B)
        if t.numel() != B:
            raise ValueError(f"target has {t.numel()} entries for a batch of {B} images")
    if bool(((t < 0) | (t >= K)).any()):
        raise ValueError(f"target classes must lie in [0, {K}), got {t.tolist()}")
    return t


def initial_score(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 8: y-hat^t = softmax(y^t exp(-1/2 ((y - y^t) / max|y - y^t|)^2))_t, per sample."""
    yt = logits.gather(1, target[:, None])
    sigma = (logits - yt).abs().amax(1, keepdim=True).clamp_min(1e-12)
    yhat = torch.softmax(yt * torch.exp(-0.5 * ((logits - yt) / sigma) ** 2), dim=1)
    return yhat.gather(1, target[:, None]).squeeze(1)


class AGFRules(RuleSet):
    """The class attribution stream of Algorithm 1, given the gradient stream of y-hat^t."""

    needs_gradients = True

    def __init__(self, flags: AGFFlags | None = None) -> None:
        self.flags = flags or AGFFlags()

    def score(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return initial_score(logits, target)

    def start(self, tr: Trace, target: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(tr.logits)  # unused: the output layer starts from Eq. 8

    def linear(self, tr: Trace, node: Node, R: torch.Tensor) -> torch.Tensor:
        m, x = node.module, node.inputs[0]
        if node.index == tr.out_index:  # Eq. 8: Phi^(1) = x^(1) * d y-hat^t / d x^(1)
            return x * (node.grad_out @ m.weight)
        C = z_abs(LinearOp(m), x, m.weight, R)
        if not self.flags.residual or node.in_shape4d is None:
            return C  # Alg. 1 line 12: r = 0 unless the next layer is 2-D
        # Alg. 1 lines 8-10: M on the 2-D form (authors: masked by C != 0, then N_max)
        g_in = node.grad_out @ m.weight  # this layer's input gradient of y-hat^t
        x4, g4 = x.reshape(node.in_shape4d), g_in.reshape(node.in_shape4d)
        M = (x4 * g4).mean(1, keepdim=True).expand_as(x4).reshape(x.shape)
        M = normalize_max(torch.relu(M) * (C != 0))
        return delta_shift(C, M)

    def conv(self, tr: Trace, node: Node, R: torch.Tensor) -> torch.Tensor:
        m, x, w = node.module, node.inputs[0], node.module.weight
        op = LinearOp(m)
        if node.is_first:  # authors: z^B with the per-sample image min / max as bounds
            return z_box(op, x, w, R, *image_bounds(x))
        f = self.flags
        if node.flat or not f.residual:  # authors' "flat" layers (ResNet 1x1 convs): C only
            return z_abs(op, x, w, R)
        B = x.shape[0]
        nz = R != 0
        xa, wa = x.abs(), w.abs()
        S_c = safe_divide(R, op.fwd(xa, wa))  # Eq. 9 (0 where R = 0, as the authors' mask)
        if f.use_a:  # Eq. 10, both VJPs in one call
            S_a = safe_divide(R, op.ones(x.shape, wa))
            V = op.vjp(x.shape, wa, torch.cat([S_c, S_a]))
            C, A = xa * V[:B], V[B:]
        else:
            C, A = xa * op.vjp(x.shape, wa, S_c), None
        # gradient stream at this layer's input (its own VJP) and, as the authors, the VJP of
        # the output gradient restricted to where Phi != 0 (for F_dx and Grad-CAM)
        g_out = node.grad_out
        g_in = tr.input_grad_of(node) if tr.sole_consumer(node) else op.vjp(x.shape, w, g_out)
        if bool(((g_out != 0) & ~nz).any()):
            g_masked = op.vjp(x.shape, w, g_out * nz)
        else:
            g_masked = g_in
        phi = C.mean(1, keepdim=True)  # authors: the partition map is C's channel mean
        numer = torch.zeros_like(C)
        if f.gradcam_residual:
            numer = numer + torch.relu((x * g_masked.mean((2, 3), keepdim=True)).mean(1, keepdim=True))
        else:
            if f.use_m:  # Eq. 12
                numer = numer + normalize_max(torch.relu((x * g_in).mean(1, keepdim=True)))
            if f.use_fx:  # Eq. 11
                numer = numer + torch.relu(factorize(x, phi))
        r = numer * torch.sigmoid(C) if f.use_gate else numer  # Eq. 13
        if f.use_fdx:
            r = r + torch.relu(factorize(g_masked, phi))
        if A is not None:
            r = r + A
        r = r * (C != 0)  # authors
        return delta_shift(C, r)  # Eq. 14


def relevance(model: nn.Module, x: torch.Tensor, rules: RuleSet, target: Target = None,
              tr: Trace | None = None) -> torch.Tensor:
    """Relevance at the input [B, C, H, W] with ``rules`` for ``target`` (see ``resolve_target``)."""
    tr = tr or trace(model, x)
    t = resolve_target(tr.logits, target)
    if rules.needs_gradients:
        tr.gradients(rules.score(tr.logits, t))
    return propagate(tr, rules, rules.start(tr, t))


def agf(model: nn.Module, x: torch.Tensor, target: Target = None,
        flags: AGFFlags | None = None) -> torch.Tensor:
    """AGF maps [B, H, W] (Algorithm 1): relevance / per-sample max, summed over channels.

    ``model`` is any eval-mode classifier built from the supported layers (torchvision VGG,
    ResNet, EfficientNet-Lite); ``x`` [B, 3, H, W]; ``target`` as in ``resolve_target``;
    ``flags`` the Table 5 switches. Deterministic on CPU.
    """
    tr = trace(model, x)
    if not isinstance(tr.nodes[tr.out_index].module, nn.Linear):
        raise UnsupportedLayerError("AGF needs a Linear output layer (Eq. 8)")
    cam = relevance(model, x, AGFRules(flags), target, tr=tr)
    cam = safe_divide(cam, cam.amax(dim=(1, 2, 3), keepdim=True))  # authors: cam / max
    return cam.sum(1).detach()


__all__ = ["ABLATIONS", "AGFFlags", "AGFRules", "agf", "initial_score", "relevance", "resolve_target"]
