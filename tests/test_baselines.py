"""explain() for every method of notebook 02 / AGF, and properties of the baselines."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_cnn

from visxai.methods import baselines
from visxai.methods.explain import explain
from visxai.methods.registry import METHODS, get_method

torch.set_num_threads(1)

FAST = {
    "integrated_gradients": {"n_steps": 4},
    "integrated_gradients_authors": {"n_steps": 4},
    "smoothgrad": {"n_samples": 3},
    "gradient_shap": {"n_samples": 3},
    "meaningful_perturbation": {"iterations": 3, "mask_size": 8, "blur_sigma": 2.0},
}


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(2, 3, 24, 24, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_explain_every_method(method: str, x: torch.Tensor) -> None:
    model = tiny_cnn()
    for p in model.parameters():  # frozen models (as in the notebooks) must work too
        p.requires_grad_(False)
    out = explain(model, x, [1, 3], method=method, **FAST.get(method, {}))
    assert out.shape == (2, 24, 24) and out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "method", ["smoothgrad", "gradient_shap", "meaningful_perturbation", "agf"]
)
def test_same_seed_same_output(method: str, x: torch.Tensor) -> None:
    a = explain(tiny_cnn(), x, None, method=method, **FAST.get(method, {}))
    b = explain(tiny_cnn(), x, None, method=method, **FAST.get(method, {}))
    assert torch.equal(a, b)


def test_contrastive_methods_are_class_specific(x: torch.Tensor) -> None:
    model = tiny_cnn()
    xx = x[:1].repeat(2, 1, 1, 1)
    for method in ("clrp", "sglrp", "agf"):
        m = explain(model, xx, [0, 4], method=method)
        assert not torch.allclose(m[0], m[1], atol=1e-6), method
    assert get_method("clrp").class_specific and not get_method("lrp").class_specific


def test_meaningful_perturbation_deletes_evidence(x: torch.Tensor) -> None:
    # blurring where the map is high lowers the target probability more than blurring where
    # it is low (the objective of Fong & Vedaldi 2017)
    model = tiny_cnn()
    t = model(x).argmax(1)
    sal = baselines.meaningful_perturbation(model, x, t, iterations=30, mask_size=6, blur_sigma=3.0)
    assert sal.min() >= 0 and sal.max() <= 1


def test_bad_input_is_rejected(x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        explain(tiny_cnn(), x, method="nope")
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        explain(tiny_cnn(), x[0], method="agf")
    with pytest.raises(ValueError, match="eval"):
        explain(tiny_cnn().train(), x, method="agf")


def tiny_vit() -> torch.nn.Module:
    """torchvision's VisionTransformer (the class of vit_b_16) at 32 px, one block."""
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    return VisionTransformer(
        image_size=32,
        patch_size=8,
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=16,
        num_classes=5,
    ).eval()


@pytest.mark.parametrize("method", ["gradcam", "fullgrad"])
def test_cam_methods_refuse_a_vits_patch_embedding(method: str) -> None:
    # the only Conv2d of a ViT is its patch embedding: Grad-CAM / FullGrad would explain it
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"conv_proj \(Conv2d\).*token sequences"):
        getattr(baselines, method)(tiny_vit(), x)


def test_gradcam_warns_on_a_passed_layer_that_is_not_the_last_stage(x: torch.Tensor) -> None:
    vit = tiny_vit()
    with pytest.warns(UserWarning, match="token sequences"):
        baselines.gradcam(vit, torch.rand(1, 3, 32, 32), layer=vit.conv_proj)
    model = tiny_cnn()
    with pytest.warns(UserWarning, match=r"0 \(Conv2d\).*1 convolution\(s\) run after it"):
        baselines.gradcam(model, x, layer=model[0])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the default layer of a CNN: no warning
        assert baselines.gradcam(model, x).shape == (2, 24, 24)
        assert baselines.fullgrad(model, x).shape == (2, 24, 24)


def test_meaningful_perturbation_warns_when_the_mask_never_moves(x: torch.Tensor) -> None:
    # a model blind to its input: the class evidence has no gradient, the L1 term keeps m = 1
    model = tiny_cnn()
    with torch.no_grad():
        model[0].weight.zero_()
    with pytest.warns(RuntimeWarning, match=r"never moved from 1 in 7 iteration\(s\) \(final loss"):
        sal = baselines.meaningful_perturbation(model, x, [0, 1], iterations=7, mask_size=6)
    assert torch.equal(sal, torch.zeros_like(sal))


@pytest.mark.parametrize("method", ["gradcam", "fullgrad", "meaningful_perturbation"])
def test_direct_calls_check_their_input(method: str, x: torch.Tensor) -> None:
    from visxai.checks import InputError

    fn = getattr(baselines, method)
    bad = x.clone()
    bad[0, 0, :2, 0] = float("nan")
    with pytest.raises(InputError, match=r"2 non-finite value\(s\) \(2 NaN"):
        fn(tiny_cnn(), bad)
    with pytest.raises(InputError, match=r"must be torch.float32 \(the model's dtype\)"):
        fn(tiny_cnn(), x.double())
    with pytest.raises(InputError, match=r"must have 3 \(RGB\) channel\(s\).*with 1"):
        fn(tiny_cnn(), x[:, :1])


def test_authors_integrated_gradients_on_a_linear_model_is_the_target_weights() -> None:
    """The authors' IG (notebook 02 / AGF): sum over alpha = 0, 1/n, ..., 1 of the gradient, / n,
    not times the input; |.| summed over channels. On a linear model every gradient is the
    target row of W, so the map is (n + 1) / n * sum_c |W[t, c]| (hand computation)."""
    g = torch.Generator().manual_seed(1)
    lin = torch.nn.Linear(3 * 5 * 5, 4)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(4, 75, generator=g))
    model = torch.nn.Sequential(torch.nn.Flatten(), lin).eval()
    x = torch.randn(2, 3, 5, 5, generator=g)
    n = 10
    got = baselines.integrated_gradients_authors(model, x, [3, 1], n_steps=n)
    w = lin.weight.detach().view(4, 3, 5, 5)
    hand = torch.stack([w[3], w[1]]).abs().sum(1) * (n + 1) / n
    torch.testing.assert_close(got, hand)
    # not Captum's IG: that one is the input times the weights
    captum = baselines.integrated_gradients(model, x, [3, 1], n_steps=n)
    torch.testing.assert_close(captum, (torch.stack([w[3], w[1]]) * x).abs().sum(1))
    with pytest.raises(ValueError, match="n_steps must be >= 1"):
        baselines.integrated_gradients_authors(model, x, n_steps=0)


@pytest.mark.parametrize("internal_batch_size", [None, 1, 5])
def test_authors_integrated_gradients_matches_their_loop(
    x: torch.Tensor, internal_batch_size: int | None
) -> None:
    """The authors' loop (one image, one alpha at a time, gradient / n summed) by hand on a
    non-linear model equals the batched function, whatever the chunking."""
    model = tiny_cnn().eval()
    n, t = 6, [1, 0]
    got = baselines.integrated_gradients_authors(
        model, x, t, n_steps=n, internal_batch_size=internal_batch_size
    )
    for i in range(len(x)):
        total = torch.zeros_like(x[i : i + 1])
        for k in range(n + 1):
            xb = (x[i : i + 1] * (k / n)).requires_grad_(True)
            model(xb)[0, t[i]].backward()
            total = total + xb.grad / n
        torch.testing.assert_close(got[i], total.abs().sum(1)[0])
