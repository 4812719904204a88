"""Tracing an unmodified model with forward hooks: one ``Node`` per module call.

``trace(model, x)`` canonizes the model (residual additions become ``Sum2`` calls), registers a
forward hook on every supported leaf module, runs one forward pass and links every call's
inputs to the call that produced them (by tensor identity, or through a pure reshape view such
as ``torch.flatten``/``Tensor.view`` between modules). Any other leaf module, or a tensor made by
a functional operation the tracer cannot see, raises ``UnsupportedLayerError`` naming the
module path and type. ``Trace.gradients(score)`` then runs the gradient stream (Eq. 5) for all
layers at once with one autograd backward pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ...device import frozen
from ...errors import UnsupportedLayerError
from ...layers import Sum2
from .canonizers import canonized
from .ops import Cat, ChannelShuffle, Chunk, Gate, Scale, SpatialMean

SUPPORTED_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv2d,
    nn.Linear,
    nn.ReLU,
    nn.ReLU6,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.BatchNorm2d,
    nn.Dropout,
    nn.Flatten,
    nn.Identity,
    Sum2,
    # added for the torchvision families beyond VGG / ResNet (issue 19; rules.py)
    nn.SiLU,
    nn.Hardswish,
    nn.GELU,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.AdaptiveMaxPool2d,
    nn.LayerNorm,
    Gate,
    Cat,
    Chunk,
    ChannelShuffle,
    Scale,
    SpatialMean,
)

#: the layers of the original tracer (VGG, ResNet, EfficientNet-Lite, small CNNs), which the
#: zennit LRP baselines cover too; anything else is propagated by our rules only
LEGACY_LAYERS: tuple[type[nn.Module], ...] = SUPPORTED_LAYERS[:12]

#: torchvision modules matched by type name (module path, class name)
_NAMED_LAYERS = (
    ("torchvision.ops.stochastic_depth", "StochasticDepth"),  # the identity in eval
    ("torchvision.ops.misc", "Permute"),
    ("torchvision.models.convnext", "LayerNorm2d"),
)


def _named(module: nn.Module) -> bool:
    t = type(module)
    return (t.__module__, t.__name__) in _NAMED_LAYERS


def _unsupported_instance(module: nn.Module) -> str | None:
    """Why a module of a supported type is not supported, or None."""
    if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) != 1:
        return (
            f"LayerNorm over {tuple(module.normalized_shape)}: only a LayerNorm over the last "
            "(channel) dimension, or torchvision's LayerNorm2d, is supported"
        )
    return None


INPUT = -1  # producer index of the model input


def is_static_same_conv(module: nn.Module) -> bool:
    """EfficientNet's ``Conv2dStaticSamePadding`` (a Conv2d with a ZeroPad2d child)."""
    return type(module).__name__ == "Conv2dStaticSamePadding" and isinstance(module, nn.Conv2d)


def _qualname(module: nn.Module) -> str:
    t = type(module)
    return f"{t.__module__}.{t.__qualname__}"


def _unsupported_message(name: str, module: nn.Module) -> str:
    why = _unsupported_instance(module)
    if why is not None:
        return (
            f"AGF/LRP relevance rules do not support module '{name or '<root>'}' of type "
            f"{_qualname(module)}: {why}"
        )
    names = ", ".join(t.__name__ for t in SUPPORTED_LAYERS)
    return (
        f"AGF/LRP relevance rules do not support module '{name or '<root>'}' of type "
        f"{_qualname(module)}; supported layers: {names}, Conv2dStaticSamePadding, "
        "torchvision's StochasticDepth, Permute and LayerNorm2d"
    )


def _is_supported(module: nn.Module) -> bool:
    return (
        type(module) in SUPPORTED_LAYERS or is_static_same_conv(module) or _named(module)
    ) and _unsupported_instance(module) is None


def leaf_modules(model: nn.Module, lazy: bool = False) -> list[tuple[str, nn.Module, str | None]]:
    """The leaf modules of ``model`` as ``(name, module, None)`` if supported, else
    ``(name, module, message)``; without ``lazy`` the first unsupported one raises
    ``UnsupportedLayerError`` at once (``trace`` reports them in execution order instead)."""
    leaves: list[tuple[str, nn.Module, str | None]] = []
    skip: set[str] = set()
    for name, module in model.named_modules():
        if any(name.startswith(s + ".") for s in skip):
            continue
        if _is_supported(module):
            leaves.append((name, module, None))
            skip.add(name)
            continue
        if isinstance(module, SUPPORTED_LAYERS) or len(module._modules) == 0:
            message = _unsupported_message(name, module)
            if not lazy:
                raise UnsupportedLayerError(message)
            leaves.append((name, module, message))
            skip.add(name)
    return leaves


@dataclass(eq=False)
class Node:
    """One call of a leaf module during the traced forward pass."""

    index: int
    name: str
    module: nn.Module
    inputs: list[torch.Tensor]
    output: torch.Tensor
    producers: list[int] = field(default_factory=list)  # INPUT for the model input
    flat: bool = False  # authors' "flat" |z| rule instead of the full AGF step
    grad_out: torch.Tensor | None = None  # gradient stream at the output (Eq. 5)
    in_shape4d: tuple[int, ...] | None = None  # Linear only: 4-D form of its flattened input

    @property
    def is_first(self) -> bool:
        """A layer applied to the model input (gets the z^B rule)."""
        return any(p == INPUT for p in self.producers)


class Trace:
    """A traced forward pass: ``nodes`` in execution order, ``logits``, the gradient stream."""

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        nodes: list[Node],
        logits: torch.Tensor,
        out_index: int,
    ) -> None:
        self.model = model
        self.x = x
        self.nodes = nodes
        self.logits = logits
        self.out_index = out_index
        self.input_grad: torch.Tensor | None = None
        self.consumers: dict[int, int] = {}
        self.readers: dict[int, list[Node]] = {}  # producer index -> the calls that read it
        for node in nodes:
            for p in node.producers:
                self.consumers[p] = self.consumers.get(p, 0) + 1
                self.readers.setdefault(p, []).append(node)

    def gradients(self, score: torch.Tensor) -> None:
        """Gradient stream: d score / d (every layer output), one backward pass (Eq. 5)."""
        outs = [n.output for n in self.nodes] + [self.x]
        grads = torch.autograd.grad(score.sum(), outs, retain_graph=True, allow_unused=True)
        for node, g in zip(self.nodes, grads[:-1]):
            node.grad_out = torch.zeros_like(node.output) if g is None else g
        self.input_grad = grads[-1] if grads[-1] is not None else torch.zeros_like(self.x)

    def producer_value(self, p: int) -> torch.Tensor:
        return self.x if p == INPUT else self.nodes[p].output

    def producer_grad(self, p: int) -> torch.Tensor:
        g = self.input_grad if p == INPUT else self.nodes[p].grad_out
        if g is None:
            raise RuntimeError("call Trace.gradients(score) before using the gradient stream")
        return g

    def input_grad_of(self, node: Node, j: int = 0) -> torch.Tensor:
        """Stream gradient at ``node``'s j-th input (reshaped like it)."""
        return self.producer_grad(node.producers[j]).reshape(node.inputs[j].shape)

    def sole_consumer(self, node: Node, j: int = 0) -> bool:
        """True if ``node`` is the only consumer of its j-th input (then its VJP is the
        stream's)."""
        return self.consumers.get(node.producers[j], 0) == 1


#: one traced call: (name, module, args, output, output._version at the call, refusal or None)
_Record = tuple[str, nn.Module, tuple, torch.Tensor, int, "str | None"]


@contextlib.contextmanager
def _hooks(model: nn.Module, records: list[_Record]) -> Iterator[None]:
    handles = []
    counts: dict[str, int] = {}

    def make(name: str, refusal: str | None):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if refusal is None and not isinstance(output, torch.Tensor):
                raise UnsupportedLayerError(f"module '{name}' returned a {type(output).__name__}")
            if refusal is None and len(args) >= 1 and output is args[0]:
                return  # identity (Dropout / Identity / StochasticDepth in eval): no record
            k = counts.get(name, 0)
            counts[name] = k + 1
            version = output._version if isinstance(output, torch.Tensor) else 0
            records.append(
                (name if k == 0 else f"{name}#{k}", module, args, output, version, refusal)
            )

        return hook

    try:
        for name, module, refusal in leaf_modules(model, lazy=True):
            handles.append(module.register_forward_hook(make(name, refusal)))
        yield
    finally:
        for h in handles:
            h.remove()


def trace(model: nn.Module, x: torch.Tensor) -> Trace:
    """Run ``model`` on ``x`` with hooks; returns the linked ``Trace`` (parameters frozen).

    Raises ``UnsupportedLayerError`` for the first problem in execution order: a module
    without a rule, an output changed in place, or a tensor computed by a functional
    operation (named, e.g. ``torch.cat``, ``+``) that no canonizer covers.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(
            f"expected a float tensor [B, C, H, W], got {getattr(x, 'shape', type(x))}"
        )
    if model.training:
        raise ValueError("put the model in eval mode (model.eval()) before explaining it")
    x = x.detach().clone().requires_grad_(True)
    records: list[_Record] = []
    with canonized(model) as flat_ids, frozen(model), torch.enable_grad(), _hooks(model, records):
        logits = model(x)

    nodes: list[Node] = []
    by_id: dict[int, int] = {}
    versions: list[int] = []
    for i, (name, module, args, output, version, refusal) in enumerate(records):
        inputs = [a for a in args if isinstance(a, torch.Tensor)]
        producers = [_resolve(t, x, by_id, nodes, versions, name) for t in inputs]
        if refusal is not None:
            raise UnsupportedLayerError(refusal)
        node = Node(i, name, module, inputs, output, flat=id(module) in flat_ids)
        node.producers = producers
        if isinstance(module, nn.Linear) and node.inputs[0].dim() == 2:
            p = node.producers[0]
            src = x if p == INPUT else nodes[p].output
            if p != INPUT and isinstance(nodes[p].module, nn.Flatten):
                src = nodes[p].inputs[0]
            if src.dim() == 4:
                node.in_shape4d = tuple(src.shape)
        by_id[id(output)] = i
        nodes.append(node)
        versions.append(version)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise UnsupportedLayerError("the model must return logits [B, K]")
    out_index = _resolve(logits, x, by_id, nodes, versions, "<model output>")
    if out_index == INPUT:
        raise UnsupportedLayerError("the model output is its input")
    return Trace(model, x, nodes, logits, out_index)


def _resolve(
    t: torch.Tensor,
    x: torch.Tensor,
    by_id: dict[int, int],
    nodes: list[Node],
    versions: list[int],
    name: str,
) -> int:
    if t is x:
        return INPUT
    if id(t) in by_id:
        i = by_id[id(t)]
        if t._version != versions[i]:
            op = _op_name(t.grad_fn) if t.grad_fn is not None else "an in-place write"
            raise UnsupportedLayerError(
                f"the output of '{nodes[i].name}' was changed in place ({op}, e.g. "
                f"`result += input` in a block's forward) before '{name}' read it; a canonizer "
                "must make that operation a module call (see visxai.methods.agf.canonizers)"
            )
        return i
    base = t._base
    if (
        base is not None
        and base.numel() == t.numel()
        and base.is_contiguous()
        and t.is_contiguous()
    ):
        if base is x:
            return INPUT
        if id(base) in by_id:
            return by_id[id(base)]
    p = _resolve_reshape_copy(t, nodes)
    if p is not None:
        return p
    ops, after = _functional_ops(t, nodes)
    first = next((o for o in ops if o not in _RESHAPE_NAMES), ops[0] if ops else "?")
    shown = ", ".join(ops[:8]) + (", ..." if len(ops) > 8 else "")
    where = ", ".join(f"'{a}'" for a in after) if after else "the model input"
    raise UnsupportedLayerError(
        f"the input of '{name}' was computed by an operation outside the supported modules: "
        f"{first} (operations after {where}, in execution order: {shown}). A functional call "
        "such as torch.sigmoid, +, *, torch.cat or a non-view reshape in a parent's forward "
        "needs a canonizer; canonizers cover torchvision ResNet, MobileNetV2/V3, EfficientNet, "
        "RegNet, ShuffleNetV2, DenseNet and ConvNeXt blocks and EfficientNet-Lite MBConvBlock"
    )


_OP_NAMES = {
    "Cat": "torch.cat",
    "Add": "+ (add)",
    "Sub": "- (subtract)",
    "Mul": "* (multiply)",
    "Div": "/ (divide)",
    "View": "reshape/view",
    "UnsafeView": "reshape/view",
    "ReshapeAlias": "reshape/view",
    "Permute": "permute",
    "Transpose": "transpose",
    "Expand": "expand",
    "Sigmoid": "torch.sigmoid",
    "Mean": "mean",
    "Clone": "clone",
}
_RESHAPE_NAMES = {"reshape/view", "permute", "transpose", "expand", "clone"}


def _op_name(fn: object) -> str:
    raw = type(fn).__name__
    base = raw.split("Backward")[0]
    return _OP_NAMES.get(base, base or raw)


def _functional_ops(t: torch.Tensor, nodes: list[Node]) -> tuple[list[str], list[str]]:
    """The autograd operations between the traced calls (or the input) and ``t``, in an
    execution order, and the traced calls they start from."""
    known = {id(n.output.grad_fn): n.name for n in nodes if n.output.grad_fn is not None}
    ops: list[str] = []
    after: list[str] = []
    seen: set[int] = set()
    stack: list[tuple[object, bool]] = [(t.grad_fn, False)]
    while stack and len(seen) < 10_000:
        fn, done = stack.pop()
        if fn is None:
            continue
        if done:
            ops.append(_op_name(fn))
            continue
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        if id(fn) in known:
            if known[id(fn)] not in after:
                after.append(known[id(fn)])
            continue
        if type(fn).__name__ == "AccumulateGrad":
            continue
        stack.append((fn, True))
        for nf, _ in reversed(fn.next_functions):
            stack.append((nf, False))
    return ops, after


_RESHAPE_FNS = ("UnsafeViewBackward0", "ViewBackward0", "ReshapeAliasBackward0", "CloneBackward0")


def _resolve_reshape_copy(t: torch.Tensor, nodes: list[Node]) -> int | None:
    """A reshape that had to copy (``torch.flatten`` of a channels_last tensor): follow the
    autograd graph through view / clone steps only, to the call whose output it reshapes."""
    fn = t.grad_fn
    steps = 0
    while fn is not None and type(fn).__name__ in _RESHAPE_FNS and len(fn.next_functions) == 1:
        fn = fn.next_functions[0][0]
        steps += 1
    if steps == 0 or fn is None:
        return None
    for node in reversed(nodes):
        if node.output.grad_fn is fn and node.output.numel() == t.numel():
            return node.index
    return None
