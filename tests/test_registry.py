"""The method registry of notebook 02 / AGF: every method runs, every field is valid, the errors."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_cnn
from torch import nn

from visxai.methods import registry
from visxai.methods.explain import explain
from visxai.methods.registry import METHODS, Method, get_method, method_names, register

torch.set_num_threads(1)

# the smallest settings that still exercise each sampled / iterative method
SMALL = {
    "integrated_gradients": {"n_steps": 4},
    "smoothgrad": {"n_samples": 3},
    "gradient_shap": {"n_samples": 3},
    "meaningful_perturbation": {"iterations": 3, "mask_size": 8, "blur_sigma": 2.0},
}

# notebook 02's tables before the registry (the paper's order, its signed set, its cost tiers)
PAPER_ORDER = [
    "integrated_gradients",
    "integrated_gradients_authors",  # the paper's Tables 2-3 "IG" (the authors' evaluation code)
    "smoothgrad",
    "gradient_shap",
    "meaningful_perturbation",
    "lrp",
    "lrp_ab",
    "fullgrad",
    "gradcam",
    "rap",
    "clrp",
    "sglrp",
    "agf",
]
SLOW = {"fullgrad", "smoothgrad", "gradient_shap", "meaningful_perturbation"}
TABLE1_AGNOSTIC = {
    "integrated_gradients",
    "integrated_gradients_authors",
    "smoothgrad",
    "lrp",
    "lrp_ab",
    "fullgrad",
    "rap",
}


def tiny_resnet() -> nn.Module:
    from torchvision.models.resnet import BasicBlock, ResNet

    torch.manual_seed(0)
    model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=5, width_per_group=64)
    for m in model.modules():  # non-trivial BatchNorm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("make_model", [tiny_cnn, tiny_resnet])
def test_every_method_runs(name: str, make_model, x: torch.Tensor) -> None:
    model = make_model()
    for p in model.parameters():
        p.requires_grad_(False)
    out = get_method(name).explainer(model, **SMALL.get(name, {}))(x, [1, 3])
    assert out.shape == (2, 32, 32) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list(METHODS))
def test_explainer_equals_explain_bitwise(name: str, x: torch.Tensor) -> None:
    kw = SMALL.get(name, {})
    a = get_method(name).explainer(tiny_cnn(), **kw)(x)
    b = explain(tiny_cnn(), x, method=name, **kw)
    assert torch.equal(a, b)
    # bound once, called twice: the same map (seeded methods included)
    f = get_method(name).explainer(tiny_cnn(), **kw)
    assert torch.equal(f(x, 2), f(x, 2))


def test_every_field_is_valid() -> None:
    assert len(METHODS) == 14
    labels = [m.label for m in METHODS.values()]
    assert len(set(labels)) == len(labels)
    for name, m in METHODS.items():
        assert isinstance(m, Method) and m.name == name and callable(m.fn)
        assert isinstance(m.label, str) and m.label.strip()
        assert isinstance(m.paper, str) and m.paper.strip()
        assert m.cost in ("fast", "slow")
        assert isinstance(m.signed, bool) and isinstance(m.class_specific, bool)


def test_registry_matches_notebook_02_tables() -> None:
    assert [n for n in method_names() if n != "gradient"] == PAPER_ORDER
    assert method_names()[-1] == "agf"
    assert set(method_names(cost="slow")) == SLOW
    assert set(method_names(cost="fast")) == set(METHODS) - SLOW
    assert set(method_names(class_specific=False)) == TABLE1_AGNOSTIC
    signed = {"gradient_shap", "lrp_ab", "rap", "clrp", "sglrp", "agf", "gradient"}
    assert set(method_names(signed=True)) == signed
    # filters combine, and keep the registry order
    both = method_names(cost="fast", signed=True)
    assert both == [n for n in method_names() if n in both]
    assert set(both) == signed - SLOW


def test_unknown_names_are_refused(x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="unknown method 'nope'.*agf"):
        get_method("nope")
    with pytest.raises(ValueError, match="unknown method"):
        explain(tiny_cnn(), x, method="nope")
    with pytest.raises(ValueError, match="cost"):
        method_names(cost="medium")
    with pytest.raises(TypeError, match="agf"):  # an unknown parameter: at binding time
        get_method("agf").explainer(tiny_cnn(), n_steps=3)


def test_explainer_validates_like_explain(x: torch.Tensor) -> None:
    f = get_method("gradient").explainer(tiny_cnn())
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        f(x[0])
    with pytest.raises(ValueError, match="eval"):
        get_method("gradient").explainer(tiny_cnn().train())(x)


def test_register_refuses_duplicates_and_bad_fields(monkeypatch) -> None:
    monkeypatch.setattr(registry, "METHODS", dict(METHODS))
    fields = dict(label="X", signed=True, class_specific=True, cost="fast", paper="Someone 2020")
    with pytest.raises(ValueError, match="already registered"):
        register("agf", **fields)
    with pytest.raises(ValueError, match="cost"):
        register("new", **{**fields, "cost": "medium"})
    with pytest.raises(ValueError, match="non-empty"):
        register("new", **{**fields, "paper": ""})

    def blank(model, x, target=None):
        return torch.zeros(x.shape[0], *x.shape[2:])

    assert register("blank", **fields)(blank) is blank  # the function comes back unchanged
    assert registry.METHODS["blank"].fn is blank
    assert registry.method_names()[-1] == "blank"
    with pytest.raises(ValueError, match="already registered"):
        register("blank", **fields)(blank)
    assert "blank" not in METHODS  # the real registry is untouched


def test_architecture_md_example_adds_a_method_with_one_registered_function(monkeypatch) -> None:
    """ARCHITECTURE.md's "How to add an attribution method", run as written: one decorated
    function is enough for explain(), the registry's filters and the explainer."""
    import re
    from pathlib import Path

    from visxai.device import frozen
    from visxai.targets import Target, resolve_target

    text = (Path(__file__).resolve().parents[1] / "ARCHITECTURE.md").read_text()
    section = text[text.index("## How to add an attribution method") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = "\n".join(line[3:] if line.startswith("   ") else line for line in code.splitlines())
    monkeypatch.setattr(registry, "METHODS", dict(METHODS))
    scope = {
        "register": register,
        "nn": nn,
        "torch": torch,
        "Target": Target,
        "resolve_target": resolve_target,
        "frozen": frozen,
    }
    exec(compile(code, "ARCHITECTURE.md", "exec"), scope)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    x = torch.rand(2, 3, 16, 16)
    maps = explain(model, x, None, method="occlusion")
    assert maps.shape == (2, 16, 16) and bool(torch.isfinite(maps).all())
    assert "occlusion" in method_names(cost="slow", signed=False)
    assert torch.equal(get_method("occlusion").explainer(model)(x), maps)


def test_bad_inputs_are_refused_before_the_method_runs() -> None:
    """Non-finite values, the wrong channel count and an integer image get a message that says
    what was found and what to pass instead, for every method (the check runs in the explainer)."""
    from visxai.checks import InputError

    x = torch.rand(2, 3, 16, 16)
    bad = x.clone()
    bad[0, 0, 0, :3] = float("nan")
    for name in ("agf", "gradient", "gradcam"):
        with pytest.raises(InputError, match="3 non-finite"):
            explain(tiny_cnn(), bad, method=name)
        with pytest.raises(InputError, match=r"3 \(RGB\) channel.*got shape \(2, 1, 16, 16\)"):
            explain(tiny_cnn(), x[:, :1], method=name)
        with pytest.raises(InputError, match="floating"):
            explain(tiny_cnn(), (x * 255).to(torch.uint8), method=name)
        with pytest.raises(InputError, match="the model's dtype"):
            explain(tiny_cnn(), x.double(), method=name)
    assert registry.input_channels(nn.Sequential(nn.Flatten(), nn.Linear(4, 2))) is None
