"""Algorithm 1 (class attribution propagation with guided factorisation) on a traced model.

Paper equations: initial attribution Eq. 8, absolute influence C Eq. 9, input-agnostic A
Eq. 10, factorisation F_x, F_dx Eqs. 7, 11, input-gradient interaction M Eq. 12, residual r
Eq. 13, Delta-shift Def. 2 / Eq. 14. Choices the paper leaves open follow the authors' code
(shirgur/AGFVisualization, modules/layers.py), each marked "authors" below.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...errors import UnsupportedLayerError
from ...layers import Sum2
from ...targets import Target, resolve_target
from ..registry import register
from .cache import abs_weight
from .graph import Node, Trace, trace
from .rules import (
    LinearOp,
    RuleSet,
    delta_shift,
    factorize,
    image_bounds,
    normalize_max,
    propagate,
    safe_divide,
    safe_divide_into,
    same_format_empty,
    z_abs,
    z_box,
)


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
            return x * self._input_grad(tr, node)
        C = z_abs(LinearOp(m), x, m.weight, R)
        # a Linear on [B, H, W, C] (ConvNeXt's pointwise layers) is a 1 x 1 conv: flat, C only
        if not self.flags.residual or node.in_shape4d is None:
            return C  # Alg. 1 line 12: r = 0 unless the next layer is 2-D
        # Alg. 1 lines 8-10: M on the 2-D form (authors: masked by C != 0, then N_max)
        g_in = self._input_grad(tr, node)  # this layer's input gradient of y-hat^t
        x4, g4 = x.reshape(node.in_shape4d), g_in.reshape(node.in_shape4d)
        M = (x4 * g4).mean(1, keepdim=True).expand_as(x4).reshape(x.shape)
        M = normalize_max(torch.relu(M) * (C != 0))
        return delta_shift(C, M)

    #: rules whose input relevance is 0 wherever their input is 0 (a product with x or |x|, or
    #: masked by C = |x| * V != 0); Flatten / Dropout / Identity pass that on unchanged
    _ZERO_AT_ZERO = (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, Sum2)
    _PASS = (nn.Flatten, nn.Dropout, nn.Identity)

    def _mask_is_redundant(self, tr: Trace, node: Node) -> bool:
        """True if the relevance at this ReLU's output is already 0 wherever the output is 0:
        then the ReLU rule R * (output > 0) changes nothing and is skipped (speed)."""
        todo, seen = [node.index], set()
        while todo:
            i = todo.pop()
            if i in seen:
                continue
            seen.add(i)
            if i == tr.out_index:
                return False
            for reader in tr.readers.get(i, []):
                m = reader.module
                if isinstance(m, self._PASS):
                    todo.append(reader.index)
                elif not isinstance(m, self._ZERO_AT_ZERO) or reader.is_first:
                    return False
        return True

    def __call__(self, tr: Trace, node: Node, R: torch.Tensor) -> list[torch.Tensor]:
        if isinstance(node.module, (nn.ReLU, nn.ReLU6)) and self._mask_is_redundant(tr, node):
            return [R]  # = R * (output > 0): R vanishes where the output does
        return super().__call__(tr, node, R)

    @staticmethod
    def _input_grad(tr: Trace, node: Node) -> torch.Tensor:
        """Gradient stream at a Linear layer's input: the traced one if the layer is its only
        reader, else the layer's own VJP (the same product autograd computes)."""
        if tr.sole_consumer(node):
            return tr.input_grad_of(node)
        return node.grad_out @ node.module.weight

    def conv(self, tr: Trace, node: Node, R: torch.Tensor) -> torch.Tensor:
        m, x, w = node.module, node.inputs[0], node.module.weight
        op = LinearOp(m)
        if node.is_first:  # authors: z^B with the per-sample image min / max as bounds
            return z_box(op, x, w, R, *image_bounds(x))
        f = self.flags
        if node.flat or not f.residual:  # authors' "flat" layers (ResNet 1x1 convs): C only
            return z_abs(op, x, w, R)
        # Speed: the element-wise steps below run in place on fresh temporaries, and the terms
        # that are constant over channels (M, F_x, F_dx) stay [B, 1, H, W] until they are
        # broadcast; the values are those of the plain formulas in the comments.
        B = x.shape[0]
        xa, wa = x.abs(), abs_weight(w)
        Z = op.fwd(xa, wa)
        if f.use_a:  # Eq. 9 and Eq. 10, both VJPs in one call
            S = same_format_empty(R, 2 * B)
            safe_divide_into(R, Z, S[:B], b_is_temporary=True)  # S_c = R / Z (0 where R = 0)
            safe_divide_into(R, op.ones(x.shape, wa), S[B:])  # S_a = R / (1 * |w|)
            V = op.vjp(x.shape, wa, S)
            C, A = V[:B].mul_(xa), V[B:]  # C = |x| * V_c
        else:
            S = safe_divide_into(R, Z, Z, b_is_temporary=True)
            C, A = op.vjp(x.shape, wa, S).mul_(xa), None
        # gradient stream at this layer's input (its own VJP) and, as the authors, the VJP of
        # the output gradient restricted to where Phi != 0 (for F_dx and Grad-CAM)
        g_out = node.grad_out
        g_in = tr.input_grad_of(node) if tr.sole_consumer(node) else op.vjp(x.shape, w, g_out)
        if bool((g_out.ne(0) & R.eq(0)).any()):
            g_masked = op.vjp(x.shape, w, g_out * (R != 0))
        else:
            g_masked = g_in
        phi = C.mean(1, keepdim=True)  # authors: the partition map is C's channel mean
        numer = None  # F_x + M (Eq. 13), [B, 1, H, W]; None = 0
        if f.gradcam_residual:
            numer = torch.relu((x * g_masked.mean((2, 3), keepdim=True)).mean(1, keepdim=True))
        else:
            if f.use_m:  # Eq. 12
                numer = normalize_max(torch.relu((x * g_in).mean(1, keepdim=True)))
            if f.use_fx:  # Eq. 11
                fx = torch.relu(factorize(x, phi))
                numer = fx if numer is None else numer + fx
        if f.use_gate:  # Eq. 13: r = (F_x + M) * sigmoid(C)
            r = torch.sigmoid(C)
            r = r.mul_(numer) if numer is not None else torch.zeros_like(C)
        else:
            r = torch.zeros_like(C)
            if numer is not None:
                r.add_(numer)
        if f.use_fdx:  # r += F_dx
            r.add_(torch.relu(factorize(g_masked, phi)))
        if A is not None:  # r += A
            r.add_(A)
        nonzero = torch.ne(C, 0, out=torch.empty_like(C))  # (C != 0) as 0. / 1.
        r.mul_(nonzero)  # authors: r * (C != 0)
        return _delta_shift_(C, r, nonzero)  # Eq. 14


def _delta_shift_(C: torch.Tensor, r: torch.Tensor, nonzero: torch.Tensor) -> torch.Tensor:
    """``delta_shift(C, r)`` given ``nonzero = (C != 0)`` as floats; overwrites ``r``."""
    dims = tuple(range(1, C.dim()))
    shift = safe_divide(r.sum(dim=dims, keepdim=True), nonzero.sum(dim=dims, keepdim=True))
    return r.add_(C).addcmul_(nonzero, shift.neg())  # C + r - shift * nonzero


def relevance(
    model: nn.Module,
    x: torch.Tensor,
    rules: RuleSet,
    target: Target = None,
    tr: Trace | None = None,
) -> torch.Tensor:
    """Relevance at the input [B, C, H, W] with ``rules`` for ``target``
    (see ``resolve_target``)."""
    tr = tr or trace(model, x)
    t = resolve_target(tr.logits, target)
    if rules.needs_gradients:
        tr.gradients(rules.score(tr.logits, t))
    return propagate(tr, rules, rules.start(tr, t))


@register(
    "agf",
    label="AGF (ours)",
    signed=True,
    class_specific=True,
    cost="fast",
    paper="Gur, Ali & Wolf 2021",
)
def agf(
    model: nn.Module, x: torch.Tensor, target: Target = None, flags: AGFFlags | None = None
) -> torch.Tensor:
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


__all__ = ["ABLATIONS", "AGFFlags", "AGFRules", "agf", "initial_score", "relevance"]
