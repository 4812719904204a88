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
