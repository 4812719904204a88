"""Relevance rules (Def. 1 "generic attribution propagation") and AGF's building blocks.

Every rule is a "gradient x input" computation: R_in = X * VJP_f(X; Theta)(R / f(X; Theta)), with
the vector-Jacobian product of the linear map taken by ``torch.nn.grad.conv2d_input`` (or a
matmul) instead of a second autograd graph, as zennit does. Written by hand because AGF needs
rule variants no library has (|x|,|theta| and 1,|theta| propagation, Eqs. 9-10) and because
CLRP, SGLRP and RAP have no maintained implementation; our LRP is cross-checked against zennit
in tests/test_agf.py.

Rule sets (subclasses of ``RuleSet``) map a traced module call to the relevance at its inputs:
``LRPRules`` (alpha-beta / z+ / epsilon, z^B on the first layer, as in the authors' LRP code),
``RAPRules`` (RAP as in the AGF authors' code, see its docstring) and, in core.py, ``AGFRules``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UnsupportedLayerError
from ...layers import Sum2
from .cache import abs_weight, derived, neg_weight, pos_weight
from .graph import Node, Trace, is_static_same_conv
from .ops import Cat, ChannelShuffle, Chunk, Gate, Scale, SpatialMean

_DIMS = (1, 2, 3)


# ----------------------------------------------------------------------------- helpers
def safe_divide(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """a / b, and 0 where b == 0 (the authors' stabiliser: |b| is kept away from 0 by eps)."""
    out = a / torch.add(b, b.sign(), alpha=eps)
    return out.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)  # only b == 0 gives inf / nan


def safe_divide_into(
    a: torch.Tensor,
    b: torch.Tensor,
    out: torch.Tensor,
    eps: float = 1e-9,
    b_is_temporary: bool = False,
) -> torch.Tensor:
    """``safe_divide(a, b)`` written into ``out`` (same values; ``b`` reused if temporary)."""
    den = b.add_(b.sign(), alpha=eps) if b_is_temporary else torch.add(b, b.sign(), alpha=eps)
    torch.div(a, den, out=out)
    return out.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def same_format_empty(like: torch.Tensor, batch: int) -> torch.Tensor:
    """An empty tensor shaped like ``like`` with batch ``batch``, in ``like``'s memory format."""
    fmt = torch.contiguous_format
    if (
        like.dim() == 4
        and not like.is_contiguous()
        and like.is_contiguous(memory_format=torch.channels_last)
    ):
        fmt = torch.channels_last
    return torch.empty(
        (batch, *like.shape[1:]), dtype=like.dtype, device=like.device, memory_format=fmt
    )


def _sum_dims(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, t.dim()))


def normalize_max(a: torch.Tensor) -> torch.Tensor:
    """N_max(a) = a / max(a), the max taken per sample over all other dims (Eq. 7, 12)."""
    m = a.amax(dim=_sum_dims(a), keepdim=True)
    return safe_divide(a, m)


def _normalize_max_fast(a: torch.Tensor) -> torch.Tensor:
    """``normalize_max(a)`` (same values) that skips the inf / nan clean-up when it cannot fire:
    every per-sample max > 0 and every ratio min / max finite (then no entry overflows)."""
    dims = _sum_dims(a)
    lo, hi = torch.aminmax(a.reshape(a.shape[0], -1), dim=1)
    shape = (a.shape[0],) + (1,) * len(dims)
    hi = hi.reshape(shape)
    den = torch.add(hi, hi.sign(), alpha=1e-9)
    out = a / den
    if not bool(((hi > 0) & torch.isfinite(lo.reshape(shape) / den)).all()):
        out.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    return out


def delta_shift(C: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Delta-shift (Def. 2, Eq. 14): C + r - sum(r) / #(C != 0), the shift on C's non-zeros.

    Keeps the per-sample sum of C (the conservation rule Eq. 2) whenever C has a non-zero.
    """
    dims = _sum_dims(C)
    nonzero = (C != 0).to(C.dtype)
    shift = safe_divide(r.sum(dim=dims, keepdim=True), nonzero.sum(dim=dims, keepdim=True))
    return C + r - shift * nonzero


def factorize(
    Y: torch.Tensor, phi: torch.Tensor, sharpness: float = 10.0, ridge: float = 1.0
) -> torch.Tensor:
    """Attribution guided factorisation F-bar(Y, phi) = W_f - W_b (Eq. 7), shape [B, 1, H, W].

    Y [B, C, H, W] is max-normalised, passed through the soft Heaviside sigmoid(10 * Y); the
    representatives R_f, R_b are the channel means over the pixels where phi > 0 / phi < 0, and
    W = relu((R^T R + I)^-1 R^T H). The factor 10 and the ridge term I are the authors' choices
    (their code); the paper writes sigmoid(Y) and plain least squares. Callers take relu(.)
    (the positive part in Eq. 11).
    """
    B, C = Y.shape[:2]
    H = _normalize_max_fast(Y).mul_(sharpness).sigmoid_().reshape(B, C, -1)  # [B, C, N]
    phi = phi.reshape(B, -1)
    pos = (phi > 0).to(Y.dtype)[:, None]
    neg = (phi < 0).to(Y.dtype)[:, None]
    r_f = safe_divide((H * pos).sum(-1), pos.sum(-1))  # [B, C]
    r_b = safe_divide((H * neg).sum(-1), neg.sum(-1))
    R = torch.stack([r_b, r_f], dim=-1)  # [B, C, 2]
    gram = R.transpose(1, 2) @ R + ridge * torch.eye(2, dtype=Y.dtype, device=Y.device)
    W = torch.relu(torch.linalg.solve(gram, R.transpose(1, 2) @ H))  # [B, 2, N]
    return (W[:, 1] - W[:, 0]).reshape(B, 1, *Y.shape[2:])


# ----------------------------------------------------------------------------- linear maps
class LinearOp:
    """The bias-free linear map of a Linear/Conv2d module: forward, VJP, all-ones response."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.is_conv = isinstance(module, nn.Conv2d)
        self.pre_pad: tuple[int, ...] | None = None
        if self.is_conv:
            if isinstance(module.padding, str) or module.padding_mode != "zeros":
                raise UnsupportedLayerError(
                    f"Conv2d with padding={module.padding!r}, padding_mode={module.padding_mode!r} "
                    "is not supported (explicit integer zero padding only)"
                )
            if is_static_same_conv(module) and isinstance(module.static_padding, nn.ZeroPad2d):
                self.pre_pad = tuple(module.static_padding.padding)

    def fwd(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        m = self.module
        if not self.is_conv:
            return F.linear(x, w, b)
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        return F.conv2d(x, w, b, m.stride, m.padding, m.dilation, m.groups)

    def vjp(
        self, x_shape: torch.Size | tuple[int, ...], w: torch.Tensor, g: torch.Tensor
    ) -> torch.Tensor:
        """d<fwd(x, w), g>/dx for x of shape ``x_shape`` (its batch taken from ``g``)."""
        m = self.module
        if not self.is_conv:
            return g @ w
        shape = [g.shape[0], *x_shape[1:]]
        if self.pre_pad is not None:
            left, right, t, btm = self.pre_pad
            shape[2] += t + btm
            shape[3] += left + right
        # the transposed convolution is the VJP (bitwise the same as conv2d_input, which
        # copies ``g`` into another memory format on some layers); output_padding restores the
        # rows / columns that a strided convolution drops
        k, s, p, d = m.kernel_size, m.stride, m.padding, m.dilation
        out_pad = [
            shape[2 + i] - ((g.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1)
            for i in range(2)
        ]
        gi = F.conv_transpose2d(g, w, None, s, p, out_pad, m.groups, d)
        if self.pre_pad is not None:
            left, _, t, _ = self.pre_pad
            gi = gi[:, :, t : t + x_shape[2], left : left + x_shape[3]]
        return gi

    def ones(self, x_shape: torch.Size | tuple[int, ...], w: torch.Tensor) -> torch.Tensor:
        """fwd(1, w) for a batch of one (cheap: one input channel with the summed kernel)."""
        if not self.is_conv:
            return derived(w, "ones", lambda t: t.sum(1)[None])
        m = self.module
        key = ("ones", tuple(x_shape[2:]), repr((m.stride, m.padding, m.dilation, self.pre_pad)))

        def make(w: torch.Tensor) -> torch.Tensor:
            ones = torch.ones(1, 1, *x_shape[2:], dtype=w.dtype, device=w.device)
            if self.pre_pad is not None:
                ones = F.pad(ones, self.pre_pad)
            return F.conv2d(ones, w.sum(1, keepdim=True), None, m.stride, m.padding, m.dilation, 1)

        return derived(w, key, make)


def z_abs(op: LinearOp, x: torch.Tensor, w: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """G(|x|, |theta|, R) (Eq. 9): the absolute influence C; the authors' "flat" rule."""
    xa, wa = x.abs(), abs_weight(w)
    Z = op.fwd(xa, wa)
    S = safe_divide_into(R, Z, Z, b_is_temporary=True)  # = 0 where R = 0: no authors' mask needed
    return op.vjp(x.shape, wa, S).mul_(xa)


def z_box(
    op: LinearOp,
    x: torch.Tensor,
    w: torch.Tensor,
    R: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
) -> torch.Tensor:
    """z^B rule (Montavon et al. 2017) for the layer on the image, bounds ``low``/``high``."""
    wp, wn = pos_weight(w), neg_weight(w)
    Z = op.fwd(x, w) - op.fwd(low, wp) - op.fwd(high, wn)
    S = safe_divide(R, Z)
    return x * op.vjp(x.shape, w, S) - low * op.vjp(x.shape, wp, S) - high * op.vjp(x.shape, wn, S)


def _stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """zennit's stabiliser: z + eps * sign(z), sign(0) = +1."""
    return z + eps * (2 * (z >= 0).to(z.dtype) - 1)


def alpha_beta(
    op: LinearOp,
    x: torch.Tensor,
    w: torch.Tensor,
    R: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 0.0,
    eps: float = 1e-6,
) -> torch.Tensor:
    """LRP-alpha-beta (Bach et al. 2015), bias ignored; alpha=1, beta=0 is z+ (zennit's ZPlus)."""
    xp, xn = x.clamp(min=0), x.clamp(max=0)
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    Sp = R / _stabilize(op.fwd(xp, wp) + op.fwd(xn, wn), eps)
    out = alpha * (xp * op.vjp(x.shape, wp, Sp) + xn * op.vjp(x.shape, wn, Sp))
    if beta:
        Sn = R / _stabilize(op.fwd(xp, wn) + op.fwd(xn, wp), eps)
        out = out - beta * (xp * op.vjp(x.shape, wn, Sn) + xn * op.vjp(x.shape, wp, Sn))
    return out


def epsilon_rule(
    op: LinearOp,
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None,
    R: torch.Tensor,
    eps: float = 1e-6,
) -> torch.Tensor:
    """LRP-epsilon (bias included in the denominator, as zennit's Epsilon)."""
    return x * op.vjp(x.shape, w, R / _stabilize(op.fwd(x, w, b), eps))


def z_graph(node: Node, R: torch.Tensor) -> torch.Tensor:
    """z-rule x * J^T (R / f(x)) through the recorded forward graph (pools): no recomputation."""
    x = node.inputs[0]
    S = safe_divide(R, node.output)
    (g,) = torch.autograd.grad(node.output, x, S, retain_graph=True)
    return x * g


def image_bounds(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample min / max of the image, expanded to its shape (the authors' z^B bounds)."""
    low = x.amin(dim=_sum_dims(x), keepdim=True).expand_as(x)
    high = x.amax(dim=_sum_dims(x), keepdim=True).expand_as(x)
    return low, high


# ----------------------------------------------------------------------------- issue 19 layers
#: x * g(x) activations (SiLU = x sigmoid(x), Hardswish = x hardsigmoid(x), GELU = x Phi(x))
#: and the monotone gates themselves, with the pass rule (below)
GATED_ACTIVATIONS = (nn.SiLU, nn.Hardswish, nn.GELU, nn.Hardsigmoid, nn.Sigmoid)


def layer_norm_rule(node: Node, R: torch.Tensor) -> torch.Tensor:
    """LN-rule of Ali et al. 2022 ("XAI for Transformers: Better Explanations through
    Conservative Propagation", Sec. 3.3): LayerNorm as the linear map
    y = a * (x - mean(x)), a = gamma / sqrt(var(x) + eps), with the statistic sqrt(var + eps)
    frozen (their detached std), and the z-rule (bias ignored) on it:
    R_in = x * J^T (R / y), J^T s = a s - mean(a s). Conserves R wherever y != 0.
    ``nn.LayerNorm`` normalises the last dim, torchvision's ``LayerNorm2d`` dim 1."""
    m, x = node.module, node.inputs[0]
    dim = 1 if type(m).__name__ == "LayerNorm2d" else -1
    mu = x.mean(dim, keepdim=True)
    var = x.var(dim, unbiased=False, keepdim=True)
    a = (var + m.eps).rsqrt()
    if m.weight is not None:
        shape = [1] * x.dim()
        shape[dim] = -1
        a = a * m.weight.reshape(shape)
    v = safe_divide(R, (x - mu) * a) * a
    return x * (v - v.mean(dim, keepdim=True))


def extended_rule(node: Node, R: torch.Tensor) -> list[torch.Tensor | None]:
    """Rules for the layers added for the torchvision families beyond VGG / ResNet.

    * Gated activations x * g(x) (SiLU, Hardswish, GELU) are a linear gate with g(x) held
      constant, as Ali et al. 2022 do for the gating terms of attention: the z-rule
      x g R / (x g) passes R where the output is non-zero (zennit's ``Pass`` for activations
      does the same); Sigmoid / Hardsigmoid (the squeeze-excitation gates) pass R as well.
    * ``Gate`` (squeeze-excitation, ``gate * x``): the gate is held constant, all of R goes to
      x, none to the squeeze branch.
    * ``Scale`` (ConvNeXt layer scale) and ``StochasticDepth`` / ``Permute``: linear maps
      without mixing: R passes (permuted back).
    * ``Cat`` splits R by the inputs' sizes, ``Chunk`` puts it back in place,
      ``ChannelShuffle`` permutes it back; ``SpatialMean`` / ``AdaptiveMaxPool2d``: z-rule.
    * ``LayerNorm`` / ``LayerNorm2d``: ``layer_norm_rule``.
    Every one of these conserves the relevance.
    """
    m = node.module
    name = type(m).__name__
    if isinstance(m, GATED_ACTIVATIONS) or isinstance(m, Scale):
        return [torch.where(node.output != 0, R, 0.0)]
    if isinstance(m, Gate):
        return [torch.where(node.output != 0, R, 0.0), None]
    if isinstance(m, Cat):
        sizes = [t.shape[m.dim] for t in node.inputs]
        return list(R.split(sizes, m.dim))
    if isinstance(m, Chunk):
        return [m.place(node.inputs[0], R)]
    if isinstance(m, ChannelShuffle):
        return [m.unshuffle(R)]
    if isinstance(m, (SpatialMean, nn.AdaptiveMaxPool2d)):
        return [z_graph(node, R)]
    if isinstance(m, nn.LayerNorm):
        return [layer_norm_rule(node, R)]
    if name == "Permute":
        inverse = [0] * len(m.dims)
        for i, d in enumerate(m.dims):
            inverse[d] = i
        return [R.permute(inverse)]
    if name == "StochasticDepth":
        return [R]
    raise UnsupportedLayerError(f"no rule for module '{node.name}' ({name})")


# ----------------------------------------------------------------------------- rule sets
class RuleSet:
    """Maps a traced module call and the relevance at its output to the relevance at its inputs.

    Defaults (shared by every rule set, as in the authors' code): ReLU/ReLU6 pass the relevance
    of the active units (the z-rule for ReLU; for ReLU6 the gradient x input form would drop
    saturated units, so we pass them too), BatchNorm/Dropout/Identity pass it through, pools
    and ``Sum2`` use the z-rule, Flatten reshapes; the layers of the other torchvision families
    follow ``extended_rule``. Subclasses define ``conv`` and ``linear``. A returned ``None``
    means no relevance for that input (a gate held constant).
    """

    needs_gradients = False

    def score(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Scalar per sample whose gradient is the gradient stream (only if needs_gradients)."""
        return logits.gather(1, target[:, None]).squeeze(1)

    def start(self, tr: Trace, target: torch.Tensor) -> torch.Tensor:
        """Relevance at the logits: y_t at the target, 0 elsewhere (LRP's R^(0))."""
        return F.one_hot(target, tr.logits.shape[1]).to(tr.logits.dtype) * tr.logits.detach()

    def conv(self, tr: Trace, node: Node, R: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def linear(self, tr: Trace, node: Node, R: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, tr: Trace, node: Node, R: torch.Tensor) -> list[torch.Tensor]:
        m = node.module
        if isinstance(m, nn.Conv2d):
            return [self.conv(tr, node, R)]
        if isinstance(m, nn.Linear):
            return [self.linear(tr, node, R)]
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            return [torch.where(node.output > 0, R, 0.0)]  # = R * (output > 0)
        if isinstance(m, (nn.BatchNorm2d, nn.Dropout, nn.Identity)):
            return [R]
        if isinstance(m, nn.Flatten):
            return [R.reshape(node.inputs[0].shape)]
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return [z_graph(node, R)]
        if isinstance(m, Sum2):
            a, b = node.inputs
            S = safe_divide(R, node.output)
            return [a * S, b * S]
        return extended_rule(node, R)


def propagate(tr: Trace, rules: RuleSet, R_logits: torch.Tensor) -> torch.Tensor:
    """Propagate ``R_logits`` [B, K] from the logits to the input through the traced graph.

    Nodes are visited in reverse execution order (a reverse topological order); a tensor read by
    several calls (a residual branch point) receives the sum of their relevances (the authors'
    Clone rule). Returns the relevance at the input, shaped like it.
    """
    rel: dict[int, torch.Tensor] = {tr.out_index: R_logits}
    R_in = torch.zeros_like(tr.x)
    with torch.no_grad():
        for node in reversed(tr.nodes):
            R = rel.pop(node.index, None)
            if R is None:
                continue
            for p, Rj in zip(node.producers, rules(tr, node, R)):
                if Rj is None:  # an input held constant (a gate): no relevance
                    continue
                Rj = Rj.reshape(tr.producer_value(p).shape)
                if p < 0:
                    R_in = R_in + Rj
                else:
                    rel[p] = rel[p] + Rj if p in rel else Rj
    return R_in


class LRPRules(RuleSet):
    """LRP on the traced graph: ``conv``/``linear`` rule one of "alpha1beta0" (= "zplus"),
    "alpha2beta1", "epsilon"; ``first="zbox"`` uses z^B with the per-sample image min/max on the
    layer that reads the image (the authors' LRP), ``first=None`` uses the conv rule there too.
    """

    def __init__(
        self,
        conv: str = "alpha1beta0",
        linear: str | None = None,
        first: str | None = "zbox",
        epsilon: float = 1e-6,
    ) -> None:
        for r in (conv, linear or conv):
            if r not in ("alpha1beta0", "zplus", "alpha2beta1", "epsilon"):
                raise ValueError(f"unknown LRP rule {r!r}")
        self.conv_rule, self.linear_rule = conv, linear or conv
        self.first, self.eps = first, epsilon

    def _apply(self, rule: str, node: Node, R: torch.Tensor) -> torch.Tensor:
        m, x = node.module, node.inputs[0]
        op = LinearOp(m)
        if node.is_first and self.first == "zbox":
            return z_box(op, x, m.weight, R, *image_bounds(x))
        if rule in ("alpha1beta0", "zplus"):
            return alpha_beta(op, x, m.weight, R, 1.0, 0.0, self.eps)
        if rule == "alpha2beta1":
            return alpha_beta(op, x, m.weight, R, 2.0, 1.0, self.eps)
        return epsilon_rule(op, x, m.weight, m.bias, R, self.eps)

    def conv(self, tr: Trace, node: Node, R: torch.Tensor) -> torch.Tensor:
        return self._apply(self.conv_rule, node, R)

    def linear(self, tr: Trace, node: Node, R: torch.Tensor) -> torch.Tensor:
        return self._apply(self.linear_rule, node, R)


def rap_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The RAP authors' ``safe_divide``: a / (b + 1e-9), and 0 where b == 0 (not sign-stabilised;
    AGFVisualization modules/layers_rap.py). Kept for RAP so that our maps equal theirs."""
    den = b + 1e-9
    den = torch.where(den == 0, 1e-9, den)
    return torch.where(b != 0, a / den, 0.0)


def _rap_reciprocal(b: torch.Tensor) -> torch.Tensor:
    """``rap_divide(1, b)`` (multiplying by it equals ``rap_divide(a, b)`` to rounding)."""
    den = b + 1e-9
    den.masked_fill_(den == 0, 1e-9)
    return den.reciprocal_().masked_fill_(b == 0, 0.0)


class RAPRules(RuleSet):
    """Relative Attributing Propagation (Nam et al., AAAI 2020) as in the AGF authors' RAP code.

    Follows ``RAP_relprop`` of shirgur/AGFVisualization modules/layers_rap.py (a copy of
    wjNam/Relative_Attributing_Propagation modules/layers.py plus a |z| rule for 1x1 convs),
    with their stabiliser ``rap_divide``. Per layer (P = fwd(|x|, W+), N = fwd(|x|, |W-|) >= 0,
    computed separately for the positive and for the negative inputs, each part shifted alone):

    - Linear / k x k Conv2d ("pos_prop" + "shift_rel"): relevance R flows in full along the W+
      paths (R / P) and *in addition* along the |W-| paths with the share N / (P + N); the conv
      version sends negative relevance in full along the |W-| paths instead (their Conv2d and
      Linear differ there; we keep both). The total then exceeds R, and the uniform shift
      C -= (sum C - sum R) / #(C != 0) on the non-zero units restores sum C = sum R per sample:
      weakly contributing units become negative, so the maps are signed.
    - 1 x 1 Conv2d: the |z| rule |x| |W| (AGF authors' addition; conserves R, no shift).
    - The layer on the image: z^B with the per-sample image min / max ("final_backward").
    - BatchNorm2d: their rule subtracts a bias share from R and re-adds it through the same
      linear map, so the share cancels exactly; what remains is R * z / (z + 1e-9) masked to
      z != 0, z = x * gamma / sqrt(var^2 + eps) (their var^2, visible only via the 1e-9).
    - ReLU / Dropout pass R unchanged; pools and residual ``Sum2`` (their ``Add``) use the
      z-rule; a tensor read twice (ResNet skip) gets the sum (their Bottleneck's ``x1 + x``).
    - Start (``start``): ``"logit"`` (default) is what the AGF authors' evaluation scripts pass,
      one-hot x logit (``clrp_target``); their ``R_p.max() == 1`` test then never holds, so
      the output Linear uses pos_prop + shift as well. ``"onehot"`` is Nam et al.'s main.py:
      a one-hot start, and the output Linear uses "first_prop" (the contributions x w_t plus a
      bias share b_t split between the positive and the negative contributions, given to the
      x+ W+ and x+ W- units) followed by "redistribute" |c| sum(c) / sum(|c|).

    Differences (ours): the image layer is the one that reads the input, not "a conv with 3
    input channels"; grouped / padded-same convs use their true VJP (the authors' code has no
    groups); BasicBlock shares use the sum (their Clone rule for BasicBlock does not run); a
    Linear without bias gets a zero bias share; batched instead of one image at a time (each
    sample is processed independently, so the values are the same).

    tests/test_rap.py re-derives the maps from the authors' formulas (their autograd
    ``gradprop``, one image at a time) and checks equality to 1e-6. Cost: two forwards and two
    VJPs per pos_prop layer (the x+ and x- parts share one batched call).
    """

    def __init__(self, start: str = "logit") -> None:
        if start not in ("logit", "onehot"):
            raise ValueError(f"RAPRules start must be 'logit' or 'onehot', got {start!r}")
        self.start_mode = start

    def start(self, tr: Trace, target: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(target, tr.logits.shape[1]).to(tr.logits.dtype)
        return onehot if self.start_mode == "onehot" else onehot * tr.logits.detach()

    def __call__(self, tr: Trace, node: Node, R: torch.Tensor) -> list[torch.Tensor]:
        m = node.module
        if isinstance(m, (nn.ReLU, nn.ReLU6)):
            return [R]  # the authors' ReLU passes R (R is 0 where the output is 0 anyway)
        if isinstance(m, nn.BatchNorm2d):
            return [self._batchnorm(node, R)]
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            x = node.inputs[0]
            (g,) = torch.autograd.grad(
                node.output, x, rap_divide(R, node.output), retain_graph=True
            )
            return [x * g]
        if isinstance(m, Sum2):
            a, b = node.inputs
            S = rap_divide(R, node.output)
            return [a * S, b * S]
        return super().__call__(tr, node, R)

    # -- rules
    def linear(self, tr: Trace, node: Node, R: torch.Tensor) -> torch.Tensor:
        m, x = node.module, node.inputs[0]
        if self.start_mode == "onehot" and node.index == tr.out_index:
            return self._first_prop(m, x, R)
        return self._pos_prop(LinearOp(m), x, m.weight, R, conv=False)

    def conv(self, tr: Trace, node: Node, R: torch.Tensor) -> torch.Tensor:
        m, x = node.module, node.inputs[0]
        op = LinearOp(m)
        if node.is_first:
            return self._zbox(op, x, m.weight, R)
        if m.weight.shape[2] == 1:  # the authors' test for a 1 x 1 kernel
            xa, wa = x.abs(), abs_weight(m.weight)
            S = rap_divide(R, op.fwd(xa, wa))
            return xa * op.vjp(x.shape, wa, S)
        if self.start_mode == "onehot" and node.index == tr.out_index:
            raise UnsupportedLayerError("RAP's one-hot start needs a Linear output layer")
        return self._pos_prop(op, x, m.weight, R, conv=True)

    @staticmethod
    def _batchnorm(node: Node, R: torch.Tensor) -> torch.Tensor:
        m, x = node.module, node.inputs[0]
        scale = (m.running_var.pow(2) + m.eps).pow(0.5)  # sic (authors): var^2
        w = (m.weight / scale if m.weight is not None else 1.0 / scale)[None, :, None, None]
        z = x * w
        return _rap_reciprocal(z).mul_(z).mul_(R)  # R * rap_divide(z, z)

    @staticmethod
    def _zbox(op: LinearOp, x: torch.Tensor, w: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
        low, high = image_bounds(x)
        wp, wn = pos_weight(w), neg_weight(w)
        S = rap_divide(R, op.fwd(x, w) - op.fwd(low, wp) - op.fwd(high, wn))
        return (
            x * op.vjp(x.shape, w, S) - low * op.vjp(x.shape, wp, S) - high * op.vjp(x.shape, wn, S)
        )

    @staticmethod
    def _pos_prop(
        op: LinearOp, x: torch.Tensor, w: torch.Tensor, R: torch.Tensor, conv: bool
    ) -> torch.Tensor:
        B = x.shape[0]
        parts = [x.clamp(min=0)]
        if bool((x < 0).any()):  # the x- part is exactly 0 (and unshifted) without negatives
            parts.append(x.clamp(max=0).neg_())
        a = torch.cat(parts) if len(parts) > 1 else parts[0]
        Rr = R.repeat(len(parts), *([1] * (R.dim() - 1))) if len(parts) > 1 else R
        wp = pos_weight(w)
        wn = derived(w, "negabs", lambda t: t.clamp(max=0).neg())
        P, N = op.fwd(a, wp), op.fwd(a, wn)
        Z = P + N
        inv_z = _rap_reciprocal(Z)
        q, share = Z.mul_(inv_z), inv_z.mul_(N)  # rap_divide(Z, Z), rap_divide(N, Z)
        if conv:  # Conv2d: R- along |W-| in full, plus the N / Z share of R along |W-|
            SP = Rr.clamp(min=0).mul_(q).mul_(_rap_reciprocal(P))
            SN = Rr.clamp(max=0).mul_(q).add_(share.mul_(Rr)).mul_(_rap_reciprocal(N))
        else:  # Linear: R along W+ in full, plus the N / Z share of R along |W-|
            SP = q.mul_(Rr).mul_(_rap_reciprocal(P))
            SN = share.mul_(Rr).mul_(_rap_reciprocal(N))
        C = op.vjp(a.shape, wp, SP).add_(op.vjp(a.shape, wn, SN)).mul_(a)
        dims = _sum_dims(C)
        nonzero = (C != 0).to(C.dtype)
        excess = C.sum(dim=dims, keepdim=True) - Rr.sum(dim=_sum_dims(Rr), keepdim=True)
        C.sub_(rap_divide(excess, nonzero.sum(dim=dims, keepdim=True)) * nonzero)  # shift_rel
        return C if len(parts) == 1 else C[:B] + C[B:]

    @staticmethod
    def _first_prop(m: nn.Module, x: torch.Tensor, pd: torch.Tensor) -> torch.Tensor:
        w = m.weight
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        wp, wn = pos_weight(w), neg_weight(w)
        Z1, Z2, Z3, Z4 = F.linear(xp, wp), F.linear(xp, wn), F.linear(xn, wp), F.linear(xn, wn)
        pos = (Z1 * pd + Z4 * pd).sum(-1, keepdim=True)
        neg = (Z2 * pd + Z3 * pd).sum(-1, keepdim=True)
        b = (
            m.bias
            if m.bias is not None
            else torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
        )
        bp = b * pd * rap_divide(pos, pos + neg)
        bn = b * pd * rap_divide(neg, pos + neg)
        C = (
            xp * (rap_divide(Z1 * pd, Z1) @ wp)
            + xn * (rap_divide(Z4 * pd, Z4) @ wn)
            + xp * (rap_divide(bp, Z1) @ wp)
            + xp * (rap_divide(Z2 * pd, Z2) @ wn)
            + xn * (rap_divide(Z3 * pd, Z3) @ wp)
            + xp * (rap_divide(bn, Z2) @ wn)
        )
        # redistribute: |C| * sum(C) / sum(|C|)
        Cp, Cn = C.clamp(min=0), C.clamp(max=0)
        total, net = (Cp - Cn).sum(-1, keepdim=True), (Cp + Cn).sum(-1, keepdim=True)
        return rap_divide(Cp, total) * net - rap_divide(Cn, total) * net
