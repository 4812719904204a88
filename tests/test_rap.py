"""RAP (Nam et al., AAAI 2020) as in the AGF authors' code: ``visxai.methods.baselines.rap``.

(a) equals an independent reference written here from the authors' formulas (AGFVisualization
    modules/layers_rap.py: pos_prop / shift_rel / first_prop / redistribute / BatchNorm bias
    share / final_backward), with plain autograd ``gradprop`` and one image at a time;
(b) maps are signed on a VGG, a ResNet and EfficientNet-Lite (the old simplified version was not);
(c) conservation: every Linear / Conv2d step keeps the per-sample sum (the shift restores it),
    so the input relevance sums to the target logit;
(d) batch independence and determinism.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from visxai.methods.agf import RAPRules, relevance
from visxai.methods.baselines import rap


# ----------------------------------------------------------------------------- reference
def _sd(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The authors' safe_divide, verbatim formula."""
    den = b.clamp(min=1e-9) + b.clamp(max=1e-9)
    den = den + den.eq(0).type(den.type()) * 1e-9
    return a / den * b.ne(0).type(b.type())


def _gradprop(Z: torch.Tensor, X: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(Z, X, S, retain_graph=True)[0]


def _shift_rel(C: torch.Tensor, R_val: torch.Tensor, dims) -> torch.Tensor:
    nz = C.ne(0).type(C.type())
    return C - _sd(R_val, nz.sum(dim=dims, keepdim=True)) * nz


def _pos_prop(R, Za1, Za2, x1, dims, conv: bool):
    R_pos, R_neg = R.clamp(min=0), R.clamp(max=0)
    S1 = _sd(R_pos * _sd(Za1 + Za2, Za1 + Za2), Za1)
    C1 = x1 * _gradprop(Za1, x1, S1)
    if conv:  # Conv2d.RAP_relprop: negative relevance along Za2
        S1n = _sd(R_neg * _sd(Za1 + Za2, Za1 + Za2), Za2)
        C1n = x1 * _gradprop(Za2, x1, S1n)
    else:  # Linear.RAP_relprop: negative relevance along Za1
        S1n = _sd(R_neg * _sd(Za1 + Za2, Za1 + Za2), Za1)
        C1n = x1 * _gradprop(Za1, x1, S1n)
    S2 = _sd(R_pos * _sd(Za2, Za1 + Za2), Za2)
    C2 = x1 * _gradprop(Za2, x1, S2)
    S2n = _sd(R_neg * _sd(Za2, Za1 + Za2), Za2)
    C2n = x1 * _gradprop(Za2, x1, S2n)
    C = C1 + C2 + C2n + C1n
    return _shift_rel(C, C.sum(dim=dims, keepdim=True) - R.sum(dim=dims, keepdim=True), dims)


def _ref_linear(m: nn.Linear, X: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    pw, nw = m.weight.clamp(min=0), m.weight.clamp(max=0)
    px, nx = X.clamp(min=0), X.clamp(max=0)
    if R.max() == 1:  # first propagation: contributions + bias shares, then redistribute
        pd = R
        Z1, Z2, Z3, Z4 = F.linear(px, pw), F.linear(px, nw), F.linear(nx, pw), F.linear(nx, nw)
        Pos = (Z1 * pd + Z4 * pd).sum(dim=-1, keepdim=True)
        Neg = (Z2 * pd + Z3 * pd).sum(dim=-1, keepdim=True)
        C1 = px * _gradprop(Z1, px, _sd(Z1 * pd, Z1))
        C2 = px * _gradprop(Z2, px, _sd(Z2 * pd, Z2))
        C3 = nx * _gradprop(Z3, nx, _sd(Z3 * pd, Z3))
        C4 = nx * _gradprop(Z4, nx, _sd(Z4 * pd, Z4))
        bp = m.bias * pd * _sd(Pos, Pos + Neg)
        bn = m.bias * pd * _sd(Neg, Pos + Neg)
        Cb1 = px * _gradprop(Z1, px, _sd(bp, Z1))
        Cb2 = px * _gradprop(Z2, px, _sd(bn, Z2))
        C = C1 + C4 + Cb1 + C2 + C3 + Cb2
        Rp, Rn = C.clamp(min=0), C.clamp(max=0)
        tot = (Rp - Rn).sum(dim=-1, keepdim=True)
        return _sd(Rp, tot) * (Rp + Rn).sum(dim=-1, keepdim=True) - _sd(Rn, tot) * (Rp + Rn).sum(
            dim=-1, keepdim=True
        )
    nz = R.ne(0).type(R.type())
    Za1, Za2 = F.linear(px, pw) * nz, -F.linear(px, nw) * nz
    Zb1, Zb2 = -F.linear(nx, pw) * nz, F.linear(nx, nw) * nz
    return _pos_prop(R, Za1, Za2, px, -1, False) + _pos_prop(R, Zb1, Zb2, nx, -1, False)


def _ref_conv(m: nn.Conv2d, X: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    def conv(x, w):
        return F.conv2d(x, w, None, m.stride, m.padding)

    pw, nw = m.weight.clamp(min=0), m.weight.clamp(max=0)
    if X.shape[1] == 3:  # final_backward: z^B with the image's min / max
        L = (
            X * 0
            + X.min(dim=1, keepdim=True)[0].min(dim=2, keepdim=True)[0].min(dim=3, keepdim=True)[0]
        )
        H = (
            X * 0
            + X.max(dim=1, keepdim=True)[0].max(dim=2, keepdim=True)[0].max(dim=3, keepdim=True)[0]
        )
        Za = conv(X, m.weight) - conv(L, pw) - conv(H, nw)
        Sp = _sd(R, Za)
        out_pad = X.size()[2] - (
            (Za.size()[2] - 1) * m.stride[0] - 2 * m.padding[0] + m.kernel_size[0]
        )

        def gp2(w):
            return F.conv_transpose2d(
                Sp, w, stride=m.stride, padding=m.padding, output_padding=out_pad
            )

        return X * gp2(m.weight) - L * gp2(pw) - H * gp2(nw)
    nz = R.ne(0).type(R.type())
    if m.weight.shape[2] == 1:
        xabs, wabs = X.abs(), m.weight.abs()
        Zabs = conv(xabs, wabs) * nz
        return xabs * _gradprop(Zabs, xabs, _sd(R, Zabs))
    px, nx = X.clamp(min=0), X.clamp(max=0)
    Za1, Za2 = conv(px, pw) * nz, -conv(px, nw) * nz
    Zb1, Zb2 = -conv(nx, pw) * nz, conv(nx, nw) * nz
    return _pos_prop(R, Za1, Za2, px, [1, 2, 3], True) + _pos_prop(R, Zb1, Zb2, nx, [1, 2, 3], True)


def _ref_bn(m: nn.BatchNorm2d, X: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    def f(R, w1, x1):
        return x1 * (_sd(R, x1 * w1) * w1)

    weight = m.weight[None, :, None, None] / (
        m.running_var[None, :, None, None].pow(2) + m.eps
    ).pow(0.5)
    bias = m.bias[:, None, None]
    bias_p = _sd(
        bias * R.ne(0).type(R.type()), R.ne(0).type(R.type()).sum(dim=[2, 3], keepdim=True)
    )
    return f(R - bias_p, weight, X) + f(bias_p, weight, X)


def reference_rap(net: nn.Sequential, x: torch.Tensor, onehot: bool) -> torch.Tensor:
    """The authors' RAP_relprop on a Sequential, one image (batch of 1), their start."""
    inputs, h = [], x
    for m in net:
        X = h.detach().requires_grad_(True)  # their forward_hook
        inputs.append(X)
        h = m(X)
    T = torch.zeros_like(h)
    T.scatter_(1, h.argmax(1, keepdim=True), 1)
    R = T if onehot else T * h  # main.py (Nam et al.) / clrp_target (AGF scripts)
    for m, X in zip(reversed(list(net)), reversed(inputs)):
        if isinstance(m, nn.Linear):
            R = _ref_linear(m, X, R)
        elif isinstance(m, nn.Conv2d):
            R = _ref_conv(m, X, R)
        elif isinstance(m, nn.BatchNorm2d):
            R = _ref_bn(m, X, R)
        elif isinstance(m, (nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
            Z = m(X)
            R = X * _gradprop(Z, X, _sd(R, Z))
        elif isinstance(m, nn.Flatten):
            R = R.reshape(X.shape)
        # ReLU / Dropout: R unchanged
    return R.detach()


def vgg_like(mixed: bool = False) -> nn.Sequential:
    """Conv-BN-ReLU-MaxPool x 2, AdaptiveAvgPool, Flatten, Linear-ReLU-Linear (float64).
    ``mixed``: a 1 x 1 conv and a conv that reads signed input (no ReLU) in between."""
    torch.manual_seed(0)
    layers: list[nn.Module] = [
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]
    if mixed:
        layers += [
            nn.Conv2d(8, 8, 1),
            nn.BatchNorm2d(8),
            nn.Conv2d(8, 8, 3, padding=1, stride=2),
            nn.BatchNorm2d(8),
            nn.ReLU(),
        ]
    layers += [
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(32, 10),
    ]
    net = nn.Sequential(*layers).double()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
            elif isinstance(m, nn.Linear):
                m.bias.uniform_(-0.5, 0.5)
    return net.eval()


def _x(n: int = 3, size: int = 16) -> torch.Tensor:
    return torch.randn(
        n, 3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )


# ----------------------------------------------------------------------------- (a) reference
@pytest.mark.parametrize("mixed", [False, True])
@pytest.mark.parametrize("start", ["logit", "onehot"])
def test_equals_authors_formulas(start: str, mixed: bool) -> None:
    net, x = vgg_like(mixed), _x(3, 16)
    ours = relevance(net, x, RAPRules(start))
    ref = torch.cat([reference_rap(net, x[i : i + 1], start == "onehot") for i in range(len(x))])
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6 * float(ref.abs().max()))
    # the map of the public entry point is the channel sum (the authors' cam.sum(dim=1))
    if start == "logit":
        torch.testing.assert_close(
            rap(net, x), ref.sum(1), rtol=1e-6, atol=1e-6 * float(ref.abs().max())
        )


def test_reference_exercises_the_signed_paths() -> None:
    """The 'mixed' net really sends relevance through the x- part and a negative R."""
    net, x = vgg_like(True), _x(1, 16)
    seen = {"neg_input": False, "neg_R": False}

    class Spy(RAPRules):
        def conv(self, tr, node, R):
            if not node.is_first and node.module.weight.shape[2] > 1:
                seen["neg_input"] |= bool((node.inputs[0] < 0).any())
                seen["neg_R"] |= bool((R < 0).any())
            return super().conv(tr, node, R)

    relevance(net, x, Spy())
    assert seen == {"neg_input": True, "neg_R": True}


# ----------------------------------------------------------------------------- (b) signed maps
def _efficientnet() -> nn.Module:
    from visxai.models.imagenet_classifiers import build_efficientnet_lite

    torch.manual_seed(0)
    return build_efficientnet_lite(0, pretrained=False)


def _small_vgg() -> nn.Module:
    from visxai.models.small_cnns import SmallVGG

    torch.manual_seed(0)
    return SmallVGG(in_channels=3).eval()


@pytest.mark.parametrize(
    "build,size,frac",
    [
        (_small_vgg, 28, 0.005),
        (lambda: torchvision.models.resnet50(weights=None), 64, 0.05),
        (_efficientnet, 64, 0.05),
    ],
    ids=["small-vgg", "resnet50", "efficientnet-lite0"],
)
def test_maps_are_signed(build, size: int, frac: float) -> None:
    """Both signs occur in every map (at least ``frac`` of the pixels each; random weights: the
    small VGG's maps are mostly positive, on the trained fmnist-vgg both signs are ~50/50)."""
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(2, 3, size, size)
    maps = rap(model, x)
    assert maps.shape == (2, size, size) and torch.isfinite(maps).all()
    for m in maps:
        assert (m > 0).float().mean() > frac and (m < 0).float().mean() > frac


# ----------------------------------------------------------------------------- (c) conservation
class _Recorder(RAPRules):
    def __init__(self, start: str) -> None:
        super().__init__(start)
        self.steps: list[tuple[nn.Module, bool, torch.Tensor, torch.Tensor]] = []

    def __call__(self, tr, node, R):
        out = super().__call__(tr, node, R)
        first_prop = self.start_mode == "onehot" and node.index == tr.out_index
        m = node.module
        pos_prop = (isinstance(m, nn.Linear) and not first_prop) or (
            isinstance(m, nn.Conv2d) and not node.is_first and m.weight.shape[2] > 1
        )
        parts = 1 + int(pos_prop and bool((node.inputs[0] < 0).any()))
        self.steps.append((m, first_prop, R * parts, sum(o.sum(_dims(o)) for o in out)))
        return out


def _dims(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(1, t.dim()))


@pytest.mark.parametrize("start", ["logit", "onehot"])
@pytest.mark.parametrize("arch", ["vgg", "mixed", "resnet"])
def test_every_layer_conserves_relevance(arch: str, start: str) -> None:
    """pos_prop + shift_rel: sum R_in = sum R_out per sample at every Linear / Conv2d (also the
    |z| and z^B layers, pools, BN and the residual sum); first_prop: sum R_in = the logit
    (contributions plus the whole bias). The authors shift the x+ and the x- parts of a layer
    separately, each to sum R_out, so a pos_prop layer that reads signed input emits 2 sum R_out
    (the 'mixed' net; VGG / ResNet / EfficientNet-Lite have no such layer). Without one, the
    input relevance sums to the logit."""
    if arch == "resnet":
        from visxai.models.small_cnns import SmallResNet

        torch.manual_seed(0)
        net = SmallResNet(in_channels=3).double().eval()
    else:
        net = vgg_like(arch == "mixed")
    x = _x(3, 16)
    rules = _Recorder(start)
    R_in = relevance(net, x, rules)
    logits = net(x).detach()
    y = logits.max(1).values
    kinds = set()
    for module, first_prop, R_out, total_in in rules.steps:
        kinds.add(type(module).__name__)
        expected = y if first_prop else R_out.sum(_dims(R_out))
        torch.testing.assert_close(total_in, expected, rtol=1e-7, atol=1e-9)
    assert {"Conv2d", "Linear", "BatchNorm2d"} <= kinds
    doubled = 2.0 if arch == "mixed" else 1.0  # one signed-input conv
    torch.testing.assert_close(R_in.sum((1, 2, 3)), doubled * y, rtol=1e-6, atol=1e-9)


def test_shift_makes_weak_units_negative() -> None:
    """Without the shift all of pos_prop's shares are >= 0 for R >= 0; the shift (sum C > sum R)
    is what makes the map signed: a hidden layer already has negative relevance."""
    net, x = vgg_like(), _x(1, 16)
    rules = _Recorder("onehot")
    relevance(net, x, rules)
    after_first = [R for m, fp, R, _ in rules.steps if isinstance(m, nn.ReLU)][
        0
    ]  # hidden Linear's output
    assert (after_first >= 0).all()  # first_prop + redistribute: |c| sum(c) / sum(|c|)
    hidden_in = [tot for m, fp, R, tot in rules.steps if isinstance(m, nn.Linear) and not fp]
    assert hidden_in  # the hidden Linear ran pos_prop
    R_conv = [R for m, fp, R, _ in rules.steps if isinstance(m, nn.Conv2d)][-1]
    assert (R_conv < 0).any() and (R_conv > 0).any()


# ------------------------------------------------------------------------- (d) batch, determinism
@pytest.mark.parametrize("start", ["logit", "onehot"])
def test_batch_independent_and_deterministic(start: str) -> None:
    net, x = vgg_like(True), _x(4, 16)
    full = relevance(net, x, RAPRules(start))
    one = torch.cat([relevance(net, x[i : i + 1], RAPRules(start)) for i in range(4)])
    torch.testing.assert_close(full, one, rtol=1e-9, atol=1e-12)
    assert torch.equal(full, relevance(net, x, RAPRules(start)))


def test_bad_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="logit"):
        RAPRules("softmax")
