"""Attribution Guided Factorization (AGF) on unmodified models, and its relevance machinery.

Gur, Ali & Wolf, "Visualization of Supervised and Self-Supervised Neural Networks via Attribution
Guided Factorization", AAAI 2021 (notebook 02). Algorithm 1, Eqs. 7-14, Def. 2.

Public API (stable; notebooks 02 parts 1 and 2 and other modules code against it)
---------------------------------------------------------------------------------
``agf(model, x, target=None, flags=AGFFlags()) -> Tensor [B, H, W]``
    AGF map per image (Alg. 1): the authors' output ``cam / max(cam)`` summed over channels.
    ``target``: None (top-1 prediction), an int (same class for all images) or a sequence /
    LongTensor of one class per image. ``x``: float tensor [B, 3, H, W] (normalised input).
``AGFFlags`` (frozen dataclass): Table 5 switches ``use_a``, ``use_fx``, ``use_fdx``, ``use_m``,
    ``use_gate`` (the 1/(1+exp(-C)) factor), ``residual`` (False = "only C"),
    ``gradcam_residual`` (r = Grad-CAM term). ``ABLATIONS: dict[str, AGFFlags]`` names the Table 5
    columns: "ours", "only_C", "no_A", "no_Fx", "no_Fdx", "no_M", "no_gate", "gradcam_residual".
``relevance(model, x, rules, start) -> Tensor [B, C, H, W]``
    The generic machinery: traces the model once with forward hooks (``trace``), then propagates
    relevance from the logits back to the input with a ``RuleSet`` (``AGFRules``, ``LRPRules``,
    ``RAPRules``). ``start(trace) -> Tensor`` gives the relevance at the logits [B, K].
``trace(model, x) -> Trace``: forward pass with hooks + canonizers; ``Trace.nodes`` (one ``Node``
    per module call), ``Trace.logits``; ``Trace.gradients(score)`` runs the gradient stream.
``LRPRules(conv="alpha1beta0"|"alpha2beta1"|"epsilon"|"zplus", first="zbox")``: LRP on the same
    machinery (used by CLRP / SGLRP / the zennit cross-check); ``RAPRules()``: RAP.
``initial_score(logits, target) -> Tensor [B]``: Eq. 8's ŷ^t.
``delta_shift(C, r)`` (Def. 2 / Eq. 14), ``factorize(Y, phi)`` (Eq. 7 with the positive part of
    Eq. 11), ``normalize_max`` (N_max).
``UnsupportedLayerError``: raised with the module path and type for anything not in
    ``SUPPORTED_LAYERS`` (Conv2d incl. groups and EfficientNet's Conv2dStaticSamePadding,
    Linear, ReLU, ReLU6, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm2d, Dropout, Flatten,
    Identity; and, for the other torchvision families, SiLU, Hardswish, GELU, Hardsigmoid,
    Sigmoid, AdaptiveMaxPool2d, LayerNorm over the last dim, torchvision's LayerNorm2d,
    Permute and StochasticDepth, and the canonizers' modules of ``ops.py``), for an output
    changed in place, or for a functional operation between modules that the canonizers do
    not cover (named: ``torch.cat``, ``+``, ...; refusals come in execution order, so a ViT
    is refused at its class-token ``torch.cat`` / position-embedding ``+``).

Coverage (issue 19; README "AGF coverage", tests/test_cnn_families.py): torchvision VGG, ResNet,
DenseNet, MobileNetV2/V3, EfficientNet (V1, V2), RegNet, ShuffleNetV2, ConvNeXt, MNASNet,
GoogLeNet and EfficientNet-Lite, unmodified. Streams of Algorithm 1 per layer, in every family:
the layer on the image gets z^B; a "flat" conv gets C only (Eq. 9); every other conv gets the
full step (C, A, F_x, F_dx, M and the gated residual, Delta-shifted, Eqs. 9-14); the output
Linear gets Eq. 8; a hidden Linear gets C, plus M when its input is a flattened feature map
(Alg. 1 line 8). The flat convs are the 1x1 convs inside a block, as in the authors' ResNet
Bottleneck: ResNet conv1/conv3/downsample (BasicBlock: conv2/downsample); MobileNet /
EfficientNet / MNASNet expand and project convs; GoogLeNet's Inception 1x1 convs; RegNet a, c
and proj; ShuffleNet branch 1x1 convs; DenseNet's bottleneck conv1. Full step: VGG's convs; the
3x3 / depthwise / grouped convs of every block (FusedMBConv's k x k expand conv); DenseNet's
transition convs and the 1x1 head convs outside blocks (MobileNet, EfficientNet, ShuffleNet
conv5). ConvNeXt: full step on the depthwise 7x7 and the downsampling convs, C only on its
pointwise Linear layers (1x1 convs on [B, H, W, C]). Residual adds (``Sum2``) split R by the
z-rule; ``torch.cat`` splits it by channels; squeeze-excitation gates, SiLU / Hardswish / GELU
(x g(x), g held constant) pass it; LayerNorm uses the LN-rule of Ali et al. 2022
(``rules.layer_norm_rule``). The squeeze-excitation convs get no relevance (the gate is
constant) but the gradient stream runs through them.

``set_weight_cache(enabled)``, ``weight_cache(enabled)`` (context manager),
    ``clear_weight_cache()``: the cache of weight-derived tensors (|W|, W+/W-, the all-ones
    response; cache.py), on by default; it keeps one extra copy of the weights per model and
    is refreshed whenever a weight changes in place or is replaced (see cache.py for the one
    case it cannot see: writes through ``weight.data``). Results are the same with it off.
``canonized(model)``: context manager used by ``trace``; residual additions of torchvision
    ResNet BasicBlock / Bottleneck and EfficientNet-Lite MBConvBlock become an explicit ``Sum2``
    module; in-place activations are made out-of-place for the duration. It applies one
    zennit-style canonizer per block type (``BasicBlockCanonizer``, ``BottleneckCanonizer``,
    ``MBConvCanonizer``, the same ones the zennit LRP baselines use, and the
    ``EXTENDED_CANONIZERS`` of the other torchvision families, in ``canonizers.py``).

What is written by hand and why: no maintained library implements AGF (zennit's hooks rewrite
the gradient of one module at a time and cannot run AGF's two coupled streams, the
factorisation of activations and gradients, or the Delta-shift), so the tracing, the rules and
the algorithm are ours. The gradient stream is plain autograd (one backward pass for every
layer); the z-rules use autograd-style vector-Jacobian products (``torch.nn.grad.conv2d_input``,
the "gradient x input" trick that zennit uses); parameters are frozen during an explanation.

Speed (benchmarks/bench_agf.py): a full AGF conv step costs one extra forward and a two-image
transposed convolution beyond the traced forward + gradient pass; |W| and the other
weight-derived tensors are cached (cache.py), Linear layers reuse the traced input gradient,
ReLU masks that cannot change anything are skipped, and the element-wise steps run in place
on temporaries. Every one of these keeps the values (checked against the previous
implementation to 1e-7 relative; tests/test_agf.py checks the cache). ``trace`` also follows
reshapes that copy (``torch.flatten`` of a channels_last tensor), so channels_last models work.
"""

from ...errors import UnsupportedLayerError
from ...layers import Sum2
from .cache import clear_weight_cache, set_weight_cache, weight_cache, weight_cache_enabled
from .canonizers import canonized
from .core import ABLATIONS, AGFFlags, AGFRules, agf, initial_score, relevance
from .graph import SUPPORTED_LAYERS, Node, Trace, trace
from .rules import (
    LRPRules,
    RAPRules,
    RuleSet,
    delta_shift,
    factorize,
    normalize_max,
    safe_divide,
)

__all__ = [
    "ABLATIONS",
    "AGFFlags",
    "AGFRules",
    "LRPRules",
    "Node",
    "RAPRules",
    "RuleSet",
    "SUPPORTED_LAYERS",
    "Sum2",
    "Trace",
    "UnsupportedLayerError",
    "agf",
    "canonized",
    "clear_weight_cache",
    "delta_shift",
    "factorize",
    "initial_score",
    "normalize_max",
    "relevance",
    "safe_divide",
    "set_weight_cache",
    "trace",
    "weight_cache",
    "weight_cache_enabled",
]
