"""AGF and the relevance family (RAP, CLRP, SGLRP, LRP) on the torchvision CNN families,
unmodified (notebook 02 / AGF; issue 19), and the LRP baselines' refusal of what no rule covers.

Every family is built small from its own torchvision classes (random weights, 64 px, BatchNorm
statistics set from one batch so that activations are O(1)); the properties: relevance
conservation layer by layer (z+ LRP, which conserves wherever its denominator is non-zero),
finite and non-constant maps, class-specific maps for the class-specific methods, the model
left exactly as it was (no forward, hook or canonizer module left behind) and its output
unchanged.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visxai.errors import UnsupportedLayerError
from visxai.methods import explain
from visxai.methods.agf import LRPRules, canonized, relevance
from visxai.methods.agf.rules import LinearOp

METHODS = ("agf", "rap", "clrp", "sglrp", "lrp")
CLASS_SPECIFIC = ("agf", "clrp", "sglrp")
SIZE = 64


def _calibrated(model: nn.Module) -> nn.Module:
    """BatchNorm running statistics = the statistics of one random batch (then eval)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5)))
    return model.eval()


def _family(name: str) -> nn.Module:
    import torchvision.models as tm
    from torchvision.models import convnext as cn
    from torchvision.models import efficientnet as ef
    from torchvision.models import regnet as rg

    torch.manual_seed(0)
    if name == "resnet":
        model = tm.resnet18(num_classes=10)
    elif name == "mobilenet_v2":
        model = tm.mobilenet_v2(num_classes=10, width_mult=0.25)
    elif name == "mobilenet_v3":
        model = tm.mobilenet_v3_small(num_classes=10)
    elif name == "efficientnet":  # MBConv with SE (b0) and FusedMBConv (v2) blocks
        setting = [
            ef.FusedMBConvConfig(1, 3, 1, 16, 16, 2),
            ef.FusedMBConvConfig(4, 3, 2, 16, 24, 1),
            ef.MBConvConfig(4, 3, 2, 24, 32, 2),
        ]
        model = ef.EfficientNet(setting, dropout=0.2, num_classes=10, last_channel=64)
    elif name == "regnet":
        params = rg.BlockParams.from_init_params(4, 16, 8.0, 2.0, 8, se_ratio=0.25)
        model = rg.RegNet(params, num_classes=10, stem_width=16)
    elif name == "shufflenet":
        model = tm.ShuffleNetV2([2, 2, 2], [16, 24, 48, 96, 128], num_classes=10)
    elif name == "densenet":
        model = tm.DenseNet(8, (2, 2, 2, 2), num_init_features=16, bn_size=2, num_classes=10)
    elif name == "mnasnet":
        model = tm.MNASNet(0.5, num_classes=10)
    elif name == "googlenet":
        model = tm.GoogLeNet(num_classes=10, aux_logits=False, init_weights=True)
    elif name == "convnext":  # layer scale 1 (not 1e-6) so that the blocks carry relevance
        setting = [cn.CNBlockConfig(16, 32, 1), cn.CNBlockConfig(32, None, 2)]
        model = cn.ConvNeXt(setting, stochastic_depth_prob=0.1, layer_scale=1.0, num_classes=10)
    else:
        raise KeyError(name)
    return _calibrated(model)


FAMILIES = (
    "resnet",
    "mobilenet_v2",
    "mobilenet_v3",
    "efficientnet",
    "regnet",
    "shufflenet",
    "densenet",
    "mnasnet",
    "googlenet",
    "convnext",
)


def _state(model: nn.Module) -> list:
    """Everything a canonizer or hook could leave behind, per module."""
    return [
        (
            name,
            "forward" in vars(m),
            sorted(m._modules),
            len(m._forward_hooks),
            len(m._forward_pre_hooks),
            len(m._backward_hooks),
            len(getattr(m, "_backward_pre_hooks", {})),
            getattr(m, "inplace", None),
        )
        for name, m in model.named_modules()
    ]


def _image() -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_runs_and_leaves_the_model_as_it_was(family: str) -> None:
    model, x = _family(family), _image()
    state = _state(model)
    with torch.no_grad():
        before = model(x)
        with canonized(model):  # the canonized forward computes the model's own, bitwise
            assert torch.equal(model(x), before)
        assert _state(model) == state
    maps = {}
    for method in METHODS:
        for target in (1, 2) if method in CLASS_SPECIFIC else (1,):
            a = explain(model, x, target, method=method)
            assert a.shape == (1, SIZE, SIZE), (method, a.shape)
            assert torch.isfinite(a).all(), method
            assert float(a.std()) > 0, f"{method}: constant map"
            maps[method, target] = a
            assert _state(model) == state, f"{method} left something behind"
    for method in CLASS_SPECIFIC:  # compared at the same scale (random weights: tiny maps)
        a, b = (maps[method, t] / maps[method, t].abs().max() for t in (1, 2))
        # beyond float noise (z+ based maps of random nets differ little between classes)
        assert float((a - b).abs().max()) > 1e-5, f"{method}: the same map for two classes"
    with torch.no_grad():
        assert torch.equal(model(x), before)


class _Conserving(LRPRules):
    """z+ LRP that checks, at every layer, sum R_in = sum R_out over the output units whose
    z+ denominator is non-zero (the units where z+ conserves; all units for the other rules)."""

    def __init__(self) -> None:
        super().__init__("alpha1beta0", first=None)
        self.checked: list[str] = []

    def __call__(self, tr, node, R):  # type: ignore[no-untyped-def]
        out = super().__call__(tr, node, R)
        expected = R
        m = node.module
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            x, op = node.inputs[0], LinearOp(m)
            z = op.fwd(x.clamp(min=0), m.weight.clamp(min=0)) + op.fwd(
                x.clamp(max=0), m.weight.clamp(max=0)
            )
            expected = R * z / (z + 1e-6 * (2 * (z >= 0).to(z.dtype) - 1))  # the rule's share
        got = sum(float(r.double().sum()) for r in out if r is not None)
        want = float(expected.double().sum())
        scale = float(R.double().abs().sum()) + 1e-30
        assert abs(got - want) <= 1e-3 * scale, (node.name, type(m).__name__, got, want)
        self.checked.append(type(m).__name__)
        return out


@pytest.mark.parametrize("family", FAMILIES)
def test_relevance_is_conserved_layer_by_layer(family: str) -> None:
    model = _family(family)
    rules = _Conserving()
    R_in = relevance(model, _image(), rules, 1)
    assert torch.isfinite(R_in).all()
    assert "Conv2d" in rules.checked and "Linear" in rules.checked


def test_vit_is_refused_naming_the_class_token_concat() -> None:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(32, 16, 1, 2, 16, 16, num_classes=10).eval()
    x, state = torch.randn(1, 3, 32, 32), _state(vit)
    for method in METHODS:
        with pytest.raises(UnsupportedLayerError, match=r"torch\.cat.*conv_proj"):
            explain(vit, x, 1, method=method)
        assert _state(vit) == state  # a refusal during the forward leaves nothing behind


# ----------------------------------------------------------------------------- LRP refusals
class _Residual(nn.Module):
    """A functional residual add that no canonizer covers (``inplace``: ``out += x``)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(3 * 16 * 16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.inplace:
            out += x
        else:
            out = out + x
        return self.fc(self.relu(out).flatten(1))


def _with(layer: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), layer, nn.ReLU(), nn.Flatten(), nn.Linear(8 * 256, 4)
    ).eval()


@pytest.mark.parametrize("method", ["lrp", "lrp_ab"])
@pytest.mark.parametrize(
    ("model", "match"),
    [
        (_with(nn.GroupNorm(2, 8)), r"'1' of type .*GroupNorm"),
        (_with(nn.LayerNorm([8, 16, 16])), r"'1' of type .*LayerNorm.*last"),
        (_with(nn.ELU()), r"'1' of type .*ELU"),
        (_Residual().eval(), r"input of 'relu'.*\+ \(add\)"),
        (_Residual(inplace=True).eval(), r"output of 'conv' was changed in place"),
    ],
)
def test_lrp_refuses_what_no_rule_covers(model: nn.Module, match: str, method: str) -> None:
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(UnsupportedLayerError, match=match):
        explain(model, x, 1, method=method)
