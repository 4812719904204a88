"""The baselines that notebook 02 / AGF (Gur, Ali & Wolf, AAAI 2021) compares with, as maps
[B, H, W]; each is registered in :mod:`visxai.methods.registry` where it is defined, in the
paper's order (gradient x input, a sanity baseline the paper does not show, first).

Adapters (no re-implementation) to maintained libraries:
- Captum: Integrated Gradients (``integrated_gradients``), SmoothGrad (NoiseTunnel over
  Saliency), Gradient SHAP, gradient x input.
- zennit: LRP (z+ on every conv / linear layer = alpha1-beta0, z^B on the image layer, as the
  authors' LRP) and LRP-alpha2-beta1; BatchNorm merged by zennit's canonizers (VGG: zennit's
  ``VGGCanonizer``), residual blocks (ResNet, EfficientNet-Lite) canonized by the zennit-style
  canonizers that the AGF tracer uses too (``agf.canonizers``: each block's forward exists
  once).
- pytorch-grad-cam: Grad-CAM and FullGrad.

Written here, on the AGF relevance machinery (``visxai.methods.agf``), because no maintained
library has them: RAP (the AGF authors' RAP rules, see ``agf.rules.RAPRules``), CLRP (Gu et al.
2018, Eq. 3) and SGLRP (Iwana et al. 2019). Integrated Gradients as the AGF authors' evaluation
computes it (``integrated_gradients_authors``: the mean path gradient, not times the input) is
written here too, as their ``baselines/integrated_gradients.py`` does it. Meaningful
Perturbation (Fong & Vedaldi, ICCV 2017) is IMPLEMENTED here (TorchRay only has extremal
perturbation): a low-resolution mask optimised with Adam to delete the class evidence by
blending with a blurred image, with L1 and total-variation penalties; map = 1 - mask. The AGF
machinery is imported inside the functions that use it, so that importing this module registers
the baselines before AGF (the registry's order is the paper's, AGF last).

Post-processing follows the authors' scripts: IG and SmoothGrad take |attribution| summed over
channels; LRP-type maps are summed over channels (signed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_model_input
from ..device import frozen
from ..targets import Target, resolve_target
from .registry import register

__all__ = [
    "integrated_gradients",
    "integrated_gradients_authors",
    "smoothgrad",
    "gradient_shap",
    "lrp",
    "lrp_ab",
    "gradcam",
    "fullgrad",
    "rap",
    "clrp",
    "sglrp",
    "meaningful_perturbation",
    "gradient",
    "cam_layer",
]


def _targets(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    with torch.no_grad():
        return resolve_target(model(x), target)


# ----------------------------------------------------------------------------- Captum
@register(
    "gradient",
    label="Gradient×Input",
    signed=True,
    class_specific=True,
    cost="fast",
    paper="Shrikumar et al. 2016",
)
def gradient(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """Plain gradient x input, summed over channels (Shrikumar et al. 2016; a sanity baseline)."""
    from captum.attr import InputXGradient

    t = _targets(model, x, target)
    with frozen(model):
        a = InputXGradient(model).attribute(x.clone().requires_grad_(True), target=t)
    return a.sum(1).detach()


@register(
    "integrated_gradients",
    label="Int. Grad",
    signed=False,
    class_specific=False,
    cost="fast",
    paper="Sundararajan, Taly & Yan 2017",
)
def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    n_steps: int = 100,
    internal_batch_size: int | None = 16,
) -> torch.Tensor:
    """Integrated Gradients (Captum), zero baseline; |attribution| summed over channels."""
    from captum.attr import IntegratedGradients

    t = _targets(model, x, target)
    with frozen(model):
        a = IntegratedGradients(model).attribute(
            x, target=t, n_steps=n_steps, internal_batch_size=internal_batch_size
        )
    return a.abs().sum(1).detach()


@register(
    "integrated_gradients_authors",
    label="Int. Grad (authors)",
    signed=False,
    class_specific=False,
    cost="fast",
    paper="Sundararajan, Taly & Yan 2017; the AGF authors' evaluation code",
)
def integrated_gradients_authors(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    n_steps: int = 100,
    internal_batch_size: int | None = 16,
) -> torch.Tensor:
    """Integrated Gradients as the AGF authors evaluate it (notebook 02 / AGF, Tables 2-3): the
    summed gradients of the target logit along ``alpha * x``, alpha = 0, 1/n, ..., 1 (n + 1
    points), each divided by n, NOT multiplied by the input; then |.| summed over channels.

    Written by hand because Captum's IG multiplies by ``x - baseline`` (registered as
    ``integrated_gradients``). With ``n + 1`` points divided by ``n`` the map is ``(n + 1) / n``
    times the mean gradient, as in the authors' script (a uniform scale: rankings and normalised
    maps are unaffected). ``internal_batch_size``: images per forward pass (None: all steps at
    once); each pass holds ``max(1, internal_batch_size // B)`` steps of the whole batch.
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    t = _targets(model, x, target)
    alphas = torch.arange(n_steps + 1, dtype=x.dtype, device=x.device) / n_steps
    per = len(alphas) if internal_batch_size is None else max(1, internal_batch_size // len(x))
    total = torch.zeros_like(x)
    with frozen(model):
        for a in alphas.split(per):
            xs = (a.view(-1, 1, 1, 1, 1) * x[None]).flatten(0, 1).requires_grad_(True)
            out = model(xs)
            score = out[torch.arange(len(xs), device=x.device), t.to(x.device).repeat(len(a))]
            (g,) = torch.autograd.grad(score.sum(), xs)
            total += g.view(len(a), *x.shape).sum(0) / n_steps
    return total.abs().sum(1).detach()


@register(
    "smoothgrad",
    label="SmoothGrad",
    signed=False,
    class_specific=False,
    cost="slow",
    paper="Smilkov et al. 2017",
)
def smoothgrad(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    n_samples: int = 50,
    noise_level: float = 0.15,
    seed: int = 0,
) -> torch.Tensor:
    """SmoothGrad (Captum NoiseTunnel + Saliency); sigma = noise_level * (max - min) per image."""
    from captum.attr import NoiseTunnel, Saliency

    t = _targets(model, x, target)
    span = x.amax(dim=(1, 2, 3)) - x.amin(dim=(1, 2, 3))
    out = []
    with frozen(model), _seeded(seed):
        for i in range(x.shape[0]):  # per image: its own sigma
            a = NoiseTunnel(Saliency(model)).attribute(
                x[i : i + 1],
                target=t[i : i + 1],
                nt_type="smoothgrad",
                nt_samples=n_samples,
                nt_samples_batch_size=min(n_samples, 10),
                stdevs=float(noise_level * span[i]),
                abs=True,
            )
            out.append(a.sum(1))
    return torch.cat(out).detach()


@register(
    "gradient_shap",
    label="Gradient SHAP",
    signed=True,
    class_specific=True,
    cost="slow",
    paper="Lundberg & Lee 2017",
)
def gradient_shap(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    n_samples: int = 20,
    stdevs: float = 0.09,
    seed: int = 0,
) -> torch.Tensor:
    """Gradient SHAP (Captum): baselines zero and uniform noise in the image range; summed over
    channels (signed)."""
    from captum.attr import GradientShap

    t = _targets(model, x, target)
    g = torch.Generator().manual_seed(seed)
    lo, hi = float(x.min()), float(x.max())
    noise = torch.rand((4, *x.shape[1:]), generator=g).to(x) * (hi - lo) + lo
    baselines = torch.cat([torch.zeros_like(x[:1]), noise])
    with frozen(model), _seeded(seed):
        a = GradientShap(model).attribute(
            x, baselines=baselines, target=t, n_samples=n_samples, stdevs=stdevs
        )
    return a.sum(1).detach()


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Fork the global torch and numpy RNGs (Captum draws from both) for a reproducible map."""
    import numpy as np

    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)
            yield
    finally:
        np.random.set_state(state)


# ----------------------------------------------------------------------------- perturbation
@register(
    "meaningful_perturbation",
    label="Meaningful Pert.",
    signed=False,
    class_specific=True,
    cost="slow",
    paper="Fong & Vedaldi 2017",
)
def meaningful_perturbation(
    model: nn.Module,
    x: torch.Tensor,
    target: Target = None,
    iterations: int = 300,
    lr: float = 0.1,
    mask_size: int = 28,
    l1: float = 0.05,
    tv: float = 0.2,
    tv_beta: float = 3.0,
    blur_sigma: float = 10.0,
) -> torch.Tensor:
    """Meaningful Perturbation (Fong & Vedaldi 2017), implemented here; map = 1 - mask in [0, 1].

    Minimise  l1 * mean(1 - m) + tv * TV_beta(m) + softmax(f(x * m + blur(x) * (1 - m)))_t  over
    a ``mask_size``^2 mask m in [0, 1] (bilinearly upsampled, m = 1 keeps the pixel, clipped to
    [0, 1]), with Adam from m = 1 (their Eq. 3 with the blur perturbation; penalties as means, so
    the weights are resolution-free). Fong & Vedaldi use 300-500 iterations; fewer give a coarser
    mask. The optimisation starts from a constant mask and has no randomness (deterministic).
    """
    check_model_input(model, x)
    t = _targets(model, x, target)
    k = int(2 * round(2 * blur_sigma) + 1)
    coords = torch.arange(k, dtype=x.dtype, device=x.device) - k // 2
    g1 = torch.exp(-0.5 * (coords / blur_sigma) ** 2)
    g1 = g1 / g1.sum()
    C = x.shape[1]
    blurred = F.conv2d(
        F.pad(x, (k // 2,) * 4, mode="reflect" if k // 2 < x.shape[-1] else "replicate"),
        g1.view(1, 1, 1, k).repeat(C, 1, 1, 1),
        groups=C,
    )
    blurred = F.conv2d(blurred, g1.view(1, 1, k, 1).repeat(C, 1, 1, 1), groups=C)
    # the mask itself is optimised and clipped to [0, 1] after each step, from m = 1 (F&V)
    mask = torch.ones(x.shape[0], 1, mask_size, mask_size, dtype=x.dtype, device=x.device)
    mask.requires_grad_(True)
    opt = torch.optim.Adam([mask], lr=lr)
    with frozen(model):
        for _ in range(iterations):
            up = F.interpolate(mask, size=x.shape[-2:], mode="bilinear", align_corners=False)
            prob = (
                torch.softmax(model(x * up + blurred * (1 - up)), 1)
                .gather(1, t[:, None])
                .squeeze(1)
            )
            dx = (mask[..., 1:, :] - mask[..., :-1, :]).abs().pow(tv_beta).mean((1, 2, 3))
            dy = (mask[..., :, 1:] - mask[..., :, :-1]).abs().pow(tv_beta).mean((1, 2, 3))
            losses = l1 * (1 - mask).mean((1, 2, 3)) + tv * (dx + dy) + prob
            opt.zero_grad()
            losses.sum().backward()
            opt.step()
            with torch.no_grad():
                mask.clamp_(0, 1)
    with torch.no_grad():
        up = F.interpolate(mask, size=x.shape[-2:], mode="bilinear", align_corners=False)
    still = [i for i in range(x.shape[0]) if bool((mask[i] == 1).all())]
    if still:
        import warnings

        final = (
            ", ".join(f"{float(losses[i].detach()):.4g}" for i in still) if iterations else "none"
        )
        warnings.warn(
            f"meaningful_perturbation: the mask of image(s) {still} never moved from 1 in "
            f"{iterations} iteration(s) (final loss {final}): the map is all zero. Raise "
            "iterations or lr, or lower l1 / tv (the target probability may already be ~0)",
            RuntimeWarning,
            stacklevel=2,
        )
    return (1 - up[:, 0]).detach()


# ----------------------------------------------------------------------------- zennit
def _zennit_canonizers(model: nn.Module) -> list:
    """zennit canonizers: BatchNorm merged into the preceding conv, and the residual blocks
    canonized by the canonizers that the AGF tracer uses (one per block type,
    ``agf.canonizers``)."""
    from torchvision.models import VGG, ResNet
    from zennit.canonizers import NamedMergeBatchNorm, SequentialMergeBatchNorm
    from zennit.torchvision import VGGCanonizer

    from .agf.canonizers import BasicBlockCanonizer, BottleneckCanonizer, MBConvCanonizer

    if isinstance(model, ResNet):  # as zennit's ResNetCanonizer, with our block canonizers
        return [SequentialMergeBatchNorm(), BottleneckCanonizer(), BasicBlockCanonizer()]
    if isinstance(model, VGG):
        return [VGGCanonizer()]
    if type(model).__name__ == "EfficientNet" and hasattr(model, "_blocks"):
        pairs = [(["_conv_stem"], "_bn0"), (["_conv_head"], "_bn1")]
        for i, b in enumerate(model._blocks):
            if b._block_args.expand_ratio != 1:
                pairs.append(([f"_blocks.{i}._expand_conv"], f"_blocks.{i}._bn0"))
            pairs += [
                ([f"_blocks.{i}._depthwise_conv"], f"_blocks.{i}._bn1"),
                ([f"_blocks.{i}._project_conv"], f"_blocks.{i}._bn2"),
            ]
        return [NamedMergeBatchNorm(pairs), MBConvCanonizer()]
    return [SequentialMergeBatchNorm()]


def _zennit_lrp(
    model: nn.Module, x: torch.Tensor, target: Target, alpha: float, beta: float
) -> torch.Tensor:
    """LRP z+ / alpha-beta with z^B on the image layer. The model is first traced by the AGF
    tracer, which raises ``UnsupportedLayerError`` (naming the module or the functional
    operation) for anything no rule covers, as for AGF / RAP / CLRP / SGLRP. zennit runs it
    on what its composite covers (VGG, ResNet, EfficientNet-Lite, plain CNNs); the layers and
    blocks it has no rule for (SiLU, GELU, squeeze-excitation, LayerNorm, ``torch.cat``, the
    other torchvision families) are propagated with the same rules on our machinery
    (``agf.LRPRules``, cross-checked against zennit in tests/test_agf.py)."""
    from zennit.attribution import Gradient
    from zennit.composites import SpecialFirstLayerMapComposite
    from zennit.rules import AlphaBeta, Norm, Pass, ZBox, ZPlus
    from zennit.types import Activation, AvgPool, Convolution, Linear

    from .agf import LRPRules, relevance, trace
    from .agf.canonizers import uses_extended_canonizers
    from .agf.graph import LEGACY_LAYERS, is_static_same_conv
    from .agf.rules import image_bounds

    tr = trace(model, x)  # UnsupportedLayerError for a layer or an operation without a rule
    legacy = not uses_extended_canonizers(model) and all(
        type(n.module) in LEGACY_LAYERS or is_static_same_conv(n.module) for n in tr.nodes
    )
    if not legacy:
        rules = LRPRules("alpha1beta0" if beta == 0 else "alpha2beta1", first="zbox")
        return relevance(model, x, rules, target, tr=tr).sum(1).detach()
    del tr
    t = _targets(model, x, target)
    low, high = image_bounds(x)
    rule = ZPlus(zero_params="bias") if beta == 0 else AlphaBeta(alpha, beta, zero_params="bias")
    composite = SpecialFirstLayerMapComposite(
        layer_map=[
            (Activation, Pass()),
            (AvgPool, Norm()),
            (nn.AdaptiveAvgPool2d, Norm()),
            (Convolution, rule),
            (Linear, rule),
        ],
        first_map=[(Convolution, ZBox(low, high, zero_params="bias"))],
        canonizers=_zennit_canonizers(model),
    )
    with torch.no_grad():
        logits = model(x)
    onehot = F.one_hot(t, logits.shape[1]).to(x) * logits  # R^(0) = y_t at the target
    with frozen(model), Gradient(model=model, composite=composite) as attributor:
        _, rel = attributor(x, onehot)
    return rel.sum(1).detach()


@register(
    "lrp",
    label="LRP",
    signed=False,
    class_specific=False,
    cost="fast",
    paper="Bach et al. 2015",
)
def lrp(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """LRP (zennit; our rules beyond zennit's families): z+ (alpha1-beta0) layers, z^B image
    layer; summed over channels. ``UnsupportedLayerError`` for what no rule covers."""
    return _zennit_lrp(model, x, target, 1.0, 0.0)


@register(
    "lrp_ab",
    label="LRP αβ",
    signed=True,
    class_specific=False,
    cost="fast",
    paper="Bach et al. 2015",
)
def lrp_ab(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """LRP-alpha2-beta1 (zennit; our rules beyond zennit's families), z^B image layer; summed
    over channels. ``UnsupportedLayerError`` for what no rule covers."""
    return _zennit_lrp(model, x, target, 2.0, 1.0)


# ----------------------------------------------------------------------------- pytorch-grad-cam
def cam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads: VGG features[-1], ResNet layer4[-1], EfficientNet head BN,
    otherwise the last Conv2d."""
    from torchvision.models import VGG, ResNet

    if isinstance(model, VGG):
        return model.features[-1]
    if isinstance(model, ResNet):
        return model.layer4[-1]
    if hasattr(model, "_bn1") and hasattr(model, "_conv_head"):
        return model._bn1
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("Grad-CAM needs a convolutional layer")
    return convs[-1]


def _cam_forward(
    model: nn.Module,
    x: torch.Tensor,
    layers: list[nn.Module],
    method: str,
    explicit: bool,
    later_convs: bool = False,
) -> torch.Tensor:
    """The logits of one forward pass that also checks that the last of ``layers`` (in execution
    order) gives a spatial feature map [B, C, h, w] of the classifier's last stage: no
    convolution (unless ``later_convs``: FullGrad sums over every bias layer) and no token
    sequence (a transformer's [B, N, D]) computed after it.

    Otherwise Grad-CAM / FullGrad explain something else, e.g. a ViT's patch-embedding
    convolution: the automatic choice (``explicit=False``) raises ``ValueError``, because the
    map would be silently wrong; a layer the caller chose is warned about (``UserWarning``),
    because an earlier stage may be wanted.
    """
    import warnings

    def shape(out: object) -> tuple[int, ...] | str:  # shapes only: no activation is kept
        out = out[0] if isinstance(out, (tuple, list)) and out else out
        return tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__

    watched = set(map(id, layers))
    calls: list[tuple[nn.Module, tuple[int, ...] | str]] = []
    hooks = [
        m.register_forward_hook(lambda mod, _inp, out: calls.append((mod, shape(out))))
        for m in model.modules()
        if id(m) in watched or not list(m.children())
    ]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in hooks:
            h.remove()
    seen = [i for i, (m, _) in enumerate(calls) if id(m) in watched]
    if not seen:
        return logits  # not called by forward: pytorch-grad-cam reports that itself
    last, out = seen[-1], calls[seen[-1]][1]
    mod = calls[last][0]
    qual = next((n for n, m in model.named_modules() if m is mod), "") or "(the model)"
    name = f"{qual} ({type(mod).__name__})"
    later = calls[last + 1 :]
    problem = ""
    if isinstance(out, str) or len(out) != 4:
        problem = f"its output {out} is not a spatial feature map [B, C, h, w]"
    elif not later_convs and any(isinstance(m, nn.Conv2d) for m, _ in later):
        n = sum(isinstance(m, nn.Conv2d) for m, _ in later)
        problem = f"{n} convolution(s) run after it: it is not the classifier's last stage"
    else:
        tokens = [
            type(m).__name__
            for m, o in later
            if not isinstance(o, str) and len(o) == 3 and o[0] == x.shape[0]
        ]
        if tokens:
            problem = (
                f"{len(tokens)} layer(s) after it ({', '.join(sorted(set(tokens))[:4])}) work on "
                "token sequences [B, N, D] (a transformer): its map is the input embedding's, "
                "not the classifier's last stage"
            )
    if problem:
        msg = f"{method}: the target layer {name} is no feature map of the last stage; {problem}"
        if explicit:
            warnings.warn(msg, UserWarning, stacklevel=3)
        else:
            todo = (
                "Pass gradcam(..., layer=) a layer whose output is the last stage's "
                "[B, C, h, w] map, or use"
                if method == "gradcam"
                else "FullGrad reads Conv2d / BatchNorm2d biases only; use"
            )
            raise ValueError(
                f"{msg}. {todo} a method that needs no feature map (e.g. 'integrated_gradients')"
            )
    return logits


@register(
    "fullgrad",
    label="FullGrad",
    signed=False,
    class_specific=False,
    cost="slow",
    paper="Srinivas & Fleuret 2019",
)
def fullgrad(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """FullGrad (pytorch-grad-cam), in [0, 1]; refused (``ValueError``) when its last bias
    layer is no spatial feature map of the classifier's last stage (e.g. a ViT: only the
    patch embedding has a Conv2d bias)."""
    from pytorch_grad_cam import FullGrad
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    check_model_input(model, x)
    bias_layers = [
        m
        for m in model.modules()
        if type(m) in (nn.Conv2d, nn.BatchNorm2d) and getattr(m, "bias", None) is not None
    ]
    if not bias_layers:
        raise ValueError(
            "FullGrad needs a Conv2d or BatchNorm2d layer with a bias (pytorch-grad-cam reads "
            f"their biases); {type(model).__name__} has none"
        )
    t = resolve_target(
        _cam_forward(model, x, bias_layers, "fullgrad", False, later_convs=True), target
    )
    with FullGrad(model=model, target_layers=[]) as cam:
        out = cam(
            input_tensor=x.clone().requires_grad_(True),
            targets=[ClassifierOutputTarget(int(c)) for c in t],
        )
    return torch.as_tensor(out, dtype=x.dtype)


@register(
    "gradcam",
    label="Grad-CAM",
    signed=False,
    class_specific=True,
    cost="fast",
    paper="Selvaraju et al. 2017",
)
def gradcam(
    model: nn.Module, x: torch.Tensor, target: Target = None, layer: nn.Module | None = None
) -> torch.Tensor:
    """Grad-CAM (pytorch-grad-cam), upsampled to the input size, in [0, 1].

    ``layer`` defaults to :func:`cam_layer`; a layer that is not a spatial feature map of the
    classifier's last stage (e.g. a ViT's patch embedding) is refused when chosen automatically
    and warned about when passed.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    check_model_input(model, x)
    chosen = layer if layer is not None else cam_layer(model)
    logits = _cam_forward(model, x, [chosen], "gradcam", explicit=layer is not None)
    t = resolve_target(logits, target)
    with GradCAM(model=model, target_layers=[chosen]) as cam:
        # input requiring grad: works on frozen models too
        out = cam(
            input_tensor=x.clone().requires_grad_(True),
            targets=[ClassifierOutputTarget(int(c)) for c in t],
        )
    return torch.as_tensor(out, dtype=x.dtype)


# ----------------------------------------------------------------------------- our machinery
@register(
    "rap",
    label="RAP",
    signed=True,
    class_specific=False,
    cost="fast",
    paper="Nam et al. 2020",
)
def rap(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """RAP (Nam et al. 2020) with the AGF authors' rules and start (one-hot x logit; see
    ``agf.rules.RAPRules``), summed over channels (signed), as their scripts do."""
    from .agf import RAPRules, relevance

    return relevance(model, x, RAPRules(), target).sum(1).detach()


def _contrastive(model: nn.Module, x: torch.Tensor, target: Target, kind: str) -> torch.Tensor:
    from .agf import LRPRules, safe_divide, trace
    from .agf.rules import propagate

    tr = trace(model, x)
    t = resolve_target(tr.logits, target)
    y = tr.logits.detach()
    K = y.shape[1]
    onehot = F.one_hot(t, K).to(y)
    if kind == "clrp":  # authors: target y_t; rest y_t / (K - 1) on every other class
        yt = y.gather(1, t[:, None])
        R_t, R_o = onehot * yt, (1 - onehot) * yt / (K - 1)
    else:  # SGLRP: softmax gradient, target p_t (1 - p_t), rest p_t p_i
        p = torch.softmax(y, 1)
        pt = p.gather(1, t[:, None])
        R_t, R_o = onehot * (pt * (1 - pt) + 1e-8), (1 - onehot) * pt * p
    rules = LRPRules("alpha1beta0")
    rel_t = propagate(tr, rules, R_t)
    rel_o = propagate(tr, rules, R_o)
    dims = (1, 2, 3)
    scale = safe_divide(rel_t.sum(dims, keepdim=True), rel_o.sum(dims, keepdim=True))
    return (rel_t - rel_o * scale).sum(1).detach()  # Eq. 3


@register(
    "clrp",
    label="CLRP",
    signed=True,
    class_specific=True,
    cost="fast",
    paper="Gu, Yang & Tresp 2018",
)
def clrp(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """Contrastive LRP (Gu, Yang & Tresp 2018), Eq. 3, z+ LRP on our machinery."""
    return _contrastive(model, x, target, "clrp")


@register(
    "sglrp",
    label="SGLRP",
    signed=True,
    class_specific=True,
    cost="fast",
    paper="Iwana, Kuroki & Uchida 2019",
)
def sglrp(model: nn.Module, x: torch.Tensor, target: Target = None) -> torch.Tensor:
    """Softmax-Gradient LRP (Iwana, Kuroki & Uchida 2019), z+ LRP on our machinery."""
    return _contrastive(model, x, target, "sglrp")
