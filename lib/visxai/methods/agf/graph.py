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
)

INPUT = -1  # producer index of the model input


def is_static_same_conv(module: nn.Module) -> bool:
    """EfficientNet's ``Conv2dStaticSamePadding`` (a Conv2d with a ZeroPad2d child)."""
    return type(module).__name__ == "Conv2dStaticSamePadding" and isinstance(module, nn.Conv2d)


def _qualname(module: nn.Module) -> str:
    t = type(module)
    return f"{t.__module__}.{t.__qualname__}"


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Supported leaf modules of ``model``; raises ``UnsupportedLayerError`` for any other leaf."""
    leaves: list[tuple[str, nn.Module]] = []
    skip: set[str] = set()
    for name, module in model.named_modules():
        if any(name.startswith(s + ".") for s in skip):
            continue
        if type(module) in SUPPORTED_LAYERS or is_static_same_conv(module):
            leaves.append((name, module))
            skip.add(name)
            continue
        if isinstance(module, SUPPORTED_LAYERS) or len(module._modules) == 0:
            names = ", ".join(t.__name__ for t in SUPPORTED_LAYERS)
            raise UnsupportedLayerError(
                f"AGF/LRP relevance rules do not support module '{name or '<root>'}' of type "
                f"{_qualname(module)}; supported layers: {names}, Conv2dStaticSamePadding"
            )
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


@contextlib.contextmanager
def _hooks(
    model: nn.Module, records: list[tuple[str, nn.Module, tuple, torch.Tensor]]
) -> Iterator[None]:
    handles = []
    counts: dict[str, int] = {}

    def make(name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            if not isinstance(output, torch.Tensor):
                raise UnsupportedLayerError(f"module '{name}' returned a {type(output).__name__}")
            if len(args) >= 1 and output is args[0]:
                return  # identity (Dropout / Identity in eval): nothing to record
            k = counts.get(name, 0)
            counts[name] = k + 1
            records.append((name if k == 0 else f"{name}#{k}", module, args, output))

        return hook

    try:
        for name, module in leaf_modules(model):
            handles.append(module.register_forward_hook(make(name)))
        yield
    finally:
        for h in handles:
            h.remove()


def trace(model: nn.Module, x: torch.Tensor) -> Trace:
    """Run ``model`` on ``x`` with hooks; returns the linked ``Trace`` (parameters frozen)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(
            f"expected a float tensor [B, C, H, W], got {getattr(x, 'shape', type(x))}"
        )
    if model.training:
        raise ValueError("put the model in eval mode (model.eval()) before explaining it")
    x = x.detach().clone().requires_grad_(True)
    records: list[tuple[str, nn.Module, tuple, torch.Tensor]] = []
    with canonized(model) as flat_ids, frozen(model), torch.enable_grad(), _hooks(model, records):
        logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise UnsupportedLayerError("the model must return logits [B, K]")

    nodes: list[Node] = []
    by_id: dict[int, int] = {}
    for i, (name, module, args, output) in enumerate(records):
        node = Node(
            i,
            name,
            module,
            [a for a in args if isinstance(a, torch.Tensor)],
            output,
            flat=id(module) in flat_ids,
        )
        for t in node.inputs:
            node.producers.append(_resolve(t, x, by_id, nodes, name))
        if isinstance(module, nn.Linear):
            p = node.producers[0]
            src = x if p == INPUT else nodes[p].output
            if p != INPUT and isinstance(nodes[p].module, nn.Flatten):
                src = nodes[p].inputs[0]
            if src.dim() == 4:
                node.in_shape4d = tuple(src.shape)
        by_id[id(output)] = i
        nodes.append(node)
    out_index = _resolve(logits, x, by_id, nodes, "<model output>")
    if out_index == INPUT:
        raise UnsupportedLayerError("the model output is its input")
    return Trace(model, x, nodes, logits, out_index)


def _resolve(
    t: torch.Tensor, x: torch.Tensor, by_id: dict[int, int], nodes: list[Node], name: str
) -> int:
    if t is x:
        return INPUT
    if id(t) in by_id:
        return by_id[id(t)]
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
    raise UnsupportedLayerError(
        f"the input of '{name}' was computed by an operation outside the supported modules "
        f"(a functional call such as torch.sigmoid, +, * or a non-view reshape in a parent's "
        f"forward); canonizers cover torchvision BasicBlock/Bottleneck and EfficientNet-Lite "
        f"MBConvBlock only"
    )


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
