"""Properties of AGF and of the relevance machinery (notebook 02 / AGF, Alg. 1, Def. 2)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from visxai.methods import baselines
from visxai.methods.agf import (
    ABLATIONS,
    AGFFlags,
    AGFRules,
    LRPRules,
    UnsupportedLayerError,
    agf,
    delta_shift,
    factorize,
    initial_score,
    relevance,
    trace,
)
from visxai.methods.agf.core import resolve_target

torch.set_num_threads(1)  # 2 OpenMP threads on the shared 2-core machine can be ~50x slower


def small_cnn(seed: int = 0, bias: bool = True) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=bias),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=bias),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=bias),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(256, 32, bias=bias),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(32, 10, bias=bias),
    ).eval()


@pytest.fixture(scope="module")
def x16() -> torch.Tensor:
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_delta_shift_keeps_sum() -> None:
    g = torch.Generator().manual_seed(0)
    C = torch.randn(4, 5, 6, 6, generator=g) * (torch.rand(4, 5, 6, 6, generator=g) > 0.5)
    r = torch.rand(4, 5, 6, 6, generator=g) * 3
    out = delta_shift(C, r)
    torch.testing.assert_close(out.sum((1, 2, 3)), C.sum((1, 2, 3)), rtol=1e-5, atol=1e-4)
    shift = out - C - r
    assert torch.all(shift[C == 0] == 0)  # the shift only touches C's non-zeros (Def. 2)
    assert torch.allclose(shift[0][C[0] != 0], -r[0].sum() / (C[0] != 0).sum())


def test_factorization_separates_foreground() -> None:
    # channels high inside a square, phi positive there: F > 0 inside, <= 0 outside
    Y = torch.zeros(1, 4, 8, 8)
    Y[..., 2:6, 2:6] = 1.0
    phi = -torch.ones(1, 1, 8, 8)
    phi[..., 2:6, 2:6] = 1.0
    F = factorize(Y, phi)
    assert F[..., 2:6, 2:6].min() > 0
    assert F[..., 2:6, 2:6].min() > F[..., :2, :].max() + 0.1  # the ridge term shrinks both


@pytest.mark.parametrize("rule", ["alpha1beta0", "alpha2beta1"])
def test_our_lrp_matches_zennit(x16: torch.Tensor, rule: str) -> None:
    model = small_cnn()
    t = torch.tensor([0, 3, 7])
    ours = relevance(model, x16, LRPRules(rule), t)
    # zennit merges BatchNorm into the conv (we pass relevance through it): compare on a model
    # whose BN is the identity, as zennit's merged conv then equals ours
    bn = model[4]
    assert torch.allclose(bn.running_mean, torch.zeros(16)) and torch.allclose(
        bn.running_var, torch.ones(16)
    )
    ref = (baselines.lrp if rule == "alpha1beta0" else baselines.lrp_ab)(model, x16, t)
    torch.testing.assert_close(ours.sum(1), ref, rtol=1e-3, atol=1e-5)


def test_lrp_zplus_conserves(x16: torch.Tensor) -> None:
    model = small_cnn(bias=False)  # bias-free: z+ and z^B conserve exactly (Eq. 2)
    t = resolve_target(model(x16), None)
    R = relevance(model, x16, LRPRules("alpha1beta0"), t)
    yt = model(x16).gather(1, t[:, None]).squeeze(1)
    pos = yt > 0  # z+ propagates positive output relevance
    torch.testing.assert_close(R.sum((1, 2, 3))[pos], yt[pos].detach(), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("flags", [AGFFlags(), ABLATIONS["only_C"], ABLATIONS["gradcam_residual"]])
def test_agf_conserves_initial_attribution(x16: torch.Tensor, flags: AGFFlags) -> None:
    # every AGF layer step (|z| rule, Delta-shift, z^B) keeps the sum of Phi^(1) (Eqs. 2, 14)
    # float64, and the tolerance relative to sum |R|: the shifted relevances are signed and
    # cancel, so the authors' 1e-9 stabiliser in every division shows up at ~1e-7 of sum |R|
    model = small_cnn().double()
    x = x16.double()
    tr = trace(model, x)
    t = resolve_target(tr.logits, None)
    R = relevance(model, x, AGFRules(flags), t, tr=tr)
    out = tr.nodes[tr.out_index]
    phi1 = (out.inputs[0] * (out.grad_out @ out.module.weight)).sum(1)
    err = (R.sum((1, 2, 3)) - phi1.detach()).abs()
    assert torch.all(err <= 1e-5 * R.abs().sum((1, 2, 3))), (err, R.abs().sum((1, 2, 3)))


def test_agf_conserves_through_residual_blocks() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval().double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    tr = trace(model, x)
    assert sum(type(n.module).__name__ == "Sum2" for n in tr.nodes) == 8
    R = relevance(model, x, AGFRules(), None, tr=tr)
    out = tr.nodes[tr.out_index]
    phi1 = (out.inputs[0] * (out.grad_out @ out.module.weight)).sum(1)
    err = (R.sum((1, 2, 3)) - phi1.detach()).abs()
    assert torch.all(err <= 1e-5 * R.abs().sum((1, 2, 3))), (err, R.abs().sum((1, 2, 3)))


def test_initial_score_highlights_target() -> None:
    y = torch.tensor([[3.0, 1.0, -2.0, 0.5]])
    for t in range(4):
        s = initial_score(y, torch.tensor([t]))
        assert 0 < s.item() < 1
    # the target's own entry is y_t * exp(0) = y_t, others are damped towards 0
    assert initial_score(y, torch.tensor([0])) > initial_score(y, torch.tensor([2]))


@pytest.mark.parametrize("name", ["vgg19", "resnet50", "efficientnet-lite0"])
def test_agf_shapes_on_real_architectures(name: str) -> None:
    torch.manual_seed(0)
    if name == "efficientnet-lite0":
        from visxai.models import load_model

        model = load_model("efficientnet-lite0").model.eval()
    else:
        model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(2, 3, 64, 64)
    maps = agf(model, x, target=[1, 500])
    assert maps.shape == (2, 64, 64)
    assert torch.isfinite(maps).all() and maps.abs().max() > 0
    # the model is left as it was: no hooks, no canonizer attributes, ReLUs in place again
    assert not any(m._forward_hooks for m in model.modules())
    assert not any(hasattr(m, "canonizer_sum") for m in model.modules())


def test_agf_class_specific_lrp_not() -> None:
    from visxai.data import load_photo
    from visxai.models import load_model

    lm = load_model("efficientnet-lite0")
    x = lm.preprocess(load_photo("dog"))[None]
    t = [lm.labels.index("malamute"), lm.labels.index("bicycle-built-for-two")]  # darknet dog.jpg
    a = agf(lm.model, x.repeat(2, 1, 1, 1), target=t)
    r = relevance(lm.model, x.repeat(2, 1, 1, 1), LRPRules("alpha1beta0"), t).sum(1)

    def corr(m: torch.Tensor) -> float:
        return float(torch.corrcoef(m.flatten(1))[0, 1])

    assert corr(r) > 0.95  # LRP: nearly the same map for both classes
    assert corr(a) < corr(r) - 0.05  # AGF: class-specific


def test_batching_and_per_image_targets(x16: torch.Tensor) -> None:
    model = small_cnn()
    both = agf(model, x16, target=[2, 5, 5])
    alone = agf(model, x16[1:2], target=5)
    torch.testing.assert_close(both[1:2], alone, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError):
        agf(model, x16, target=[1, 2])
    with pytest.raises(ValueError):
        agf(model, x16, target=10)


def test_same_seed_same_output(x16: torch.Tensor) -> None:
    a = agf(small_cnn(seed=3), x16, flags=ABLATIONS["no_A"])
    b = agf(small_cnn(seed=3), x16, flags=ABLATIONS["no_A"])
    assert torch.equal(a, b)


def test_ablations_change_the_map(x16: torch.Tensor) -> None:
    model = small_cnn()
    full = agf(model, x16)
    for name, flags in ABLATIONS.items():
        m = agf(model, x16, flags=flags)
        assert torch.isfinite(m).all()
        if name != "ours":
            assert not torch.allclose(m, full), name


@pytest.mark.parametrize("layer", [nn.GroupNorm(2, 8), nn.LayerNorm([8, 16, 16])])
def test_unsupported_layer_is_named(x16: torch.Tensor, layer: nn.Module) -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), layer, nn.Flatten(), nn.Linear(8 * 256, 4)
    ).eval()
    with pytest.raises(UnsupportedLayerError, match=rf"'1' of type .*{type(layer).__name__}"):
        agf(model, x16)


def test_functional_op_between_modules_is_reported(x16: torch.Tensor) -> None:
    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 256, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.sigmoid(self.conv(x)).flatten(1))

    with pytest.raises(UnsupportedLayerError, match="input of 'fc'"):
        agf(Gate().eval(), x16)


def test_weight_cache_gives_identical_maps_and_follows_weight_changes(x16: torch.Tensor) -> None:
    from visxai.methods.agf import cache

    model = small_cnn()
    with cache.weight_cache(False):
        ref = agf(model, x16)
    with cache.weight_cache(True):
        first, again = agf(model, x16), agf(model, x16)  # the second call reads the cache
        w = model[3].weight
        wa = cache.abs_weight(w)
        assert cache.abs_weight(w) is wa  # cached, not recomputed
        assert torch.equal(first, ref) and torch.equal(again, ref)
        with torch.no_grad():  # an in-place write bumps the version counter: entry recomputed
            model[3].weight.mul_(-2.0)
            model[10].weight.add_(0.5)
        changed = agf(model, x16)
        assert cache.abs_weight(w) is not wa and torch.equal(cache.abs_weight(w), w.detach().abs())
        model[0].weight.data = model[0].weight.data.flip(-1)  # a new storage (data_ptr) too
        replaced = agf(model, x16)
    with cache.weight_cache(False):
        changed_ref = agf(model, x16)
        assert not cache._STORE  # switching off empties the cache
    assert not torch.equal(changed, ref)
    torch.testing.assert_close(replaced, changed_ref, rtol=0, atol=0)


def test_channels_last_model_gives_the_same_maps() -> None:
    # VGG's torch.flatten copies a channels_last tensor: the tracer follows the copy
    torch.manual_seed(0)
    model = torchvision.models.vgg11(weights=None).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ref = agf(model, x)
    model = model.to(memory_format=torch.channels_last)
    out = agf(model, x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_relu_mask_still_applied_before_batchnorm(x16: torch.Tensor) -> None:
    # a ReLU read by BatchNorm (pre-activation order) keeps its rule: the map must equal the
    # one computed with the ReLU rule forced on every ReLU
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 5),
    ).eval()
    with torch.no_grad():
        model[2].bias.fill_(0.3)  # BN(0) != 0: the relevance there is not 0 where the ReLU is
    rules = AGFRules()
    forced = AGFRules()
    forced._mask_is_redundant = lambda tr, node: False  # type: ignore[method-assign]
    t = torch.tensor([0, 1, 2])
    torch.testing.assert_close(
        relevance(model, x16, rules, t), relevance(model, x16, forced, t), rtol=0, atol=0
    )
    tr = trace(model, x16)
    relus = [n for n in tr.nodes if isinstance(n.module, nn.ReLU)]
    assert not rules._mask_is_redundant(tr, relus[0]) and rules._mask_is_redundant(tr, relus[1])


def _block_models() -> list[tuple[str, nn.Module]]:
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    from visxai.models.imagenet_classifiers import build_efficientnet_lite

    torch.manual_seed(0)
    out = [
        ("basic", ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10).eval()),
        ("bottleneck", ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10).eval()),
        ("mbconv", build_efficientnet_lite(0, pretrained=False).eval()),
    ]
    for _, model in out:  # BatchNorm statistics that are not the identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return out


@pytest.mark.parametrize("kind", ["basic", "bottleneck", "mbconv"])
def test_block_canonizers_keep_the_function_and_restore_the_model(kind: str) -> None:
    from visxai.layers import Sum2
    from visxai.methods.agf.canonizers import canonized

    model = dict(_block_models())[kind]
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(x)
        with canonized(model) as flat:
            sums = [m for m in model.modules() if isinstance(m, Sum2)]
            calls = []
            handles = [s.register_forward_hook(lambda *a: calls.append(1)) for s in sums]
            during = model(x)
            for h in handles:
                h.remove()
        after = model(x)
    # the canonized forward is the block's own forward, bitwise; every skip sum is a Sum2 call
    assert torch.equal(before, during) and torch.equal(before, after)
    if kind == "mbconv":  # only blocks with an identity skip add
        a = [b._block_args for b in model._blocks]
        n_skip = sum(b.id_skip and b.stride == 1 and b.input_filters == b.output_filters for b in a)
    else:
        n_skip = len(sums)
    assert sums and 0 < n_skip == len(calls)
    convs = {id(m) for m in model.modules() if isinstance(m, nn.Conv2d)}
    assert flat and flat < convs  # some, not all, convolutions are "flat"
    assert not any("forward" in vars(m) or hasattr(m, "canonizer_sum") for m in model.modules())


def test_squeeze_excitation_is_refused_before_anything_changes() -> None:
    from visxai.methods.agf.canonizers import canonized

    model = dict(_block_models())["mbconv"]
    model._blocks[3].has_se = True
    with pytest.raises(UnsupportedLayerError, match=r"_blocks\.3.*squeeze-excitation"):
        with canonized(model):
            pass
    assert not any("forward" in vars(m) or hasattr(m, "canonizer_sum") for m in model.modules())


@pytest.mark.parametrize("kind", ["basic", "bottleneck"])
def test_zennit_lrp_with_our_block_canonizers_equals_zennits_own(kind: str, monkeypatch) -> None:
    # the LRP baselines canonize ResNet blocks with the AGF tracer's canonizers: the maps are
    # bitwise those of zennit's ResNetCanonizer
    from zennit.torchvision import ResNetCanonizer

    model = dict(_block_models())[kind]
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ours = baselines.lrp_ab(model, x, [1, 3])
    monkeypatch.setattr(baselines, "_zennit_canonizers", lambda m: [ResNetCanonizer()])
    theirs = baselines.lrp_ab(model, x, [1, 3])
    assert torch.equal(ours, theirs) and ours.abs().sum() > 0
