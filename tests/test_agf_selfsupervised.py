"""Algorithm 2 (Gur et al. 2021): nearest neighbour in the penultimate layer, subtract, explain."""

import pytest
import torch
from torch import nn

from visxai.methods.agf_selfsupervised import (
    explain_ssl,
    latent_bank,
    penultimate_split,
    ssl_targets,
)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 8),
        nn.ReLU(),
        nn.Linear(8, 4),
    ).eval()


def test_penultimate_split_reproduces_the_model():
    m = _model()
    x = torch.rand(5, 3, 8, 8)
    embed, head = penultimate_split(m)
    assert head is m[-1]
    z = embed(x)
    assert z.shape == (5, 8)
    assert torch.allclose(head(z), m(x), atol=1e-6)


def test_penultimate_split_rejects_a_non_final_linear():
    m = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.Tanh())
    embed, _ = penultimate_split(m)
    with pytest.raises(ValueError, match="not the final layer"):
        embed(torch.rand(2, 3, 2, 2))


def test_nearest_neighbour_and_the_three_variants():
    m = _model()
    embed, head = penultimate_split(m)
    ref = torch.rand(20, 3, 8, 8)
    bank = latent_bank(embed, ref, batch_size=7)
    assert torch.allclose(bank, embed(ref), atol=1e-6)
    x = torch.rand(6, 3, 8, 8)
    li = embed(x)
    brute = torch.stack([((bank - e) ** 2).sum(1).argmin() for e in li])
    d = ssl_targets(embed, head, x, bank, "delta")
    assert torch.equal(d.neighbour, brute)
    assert torch.equal(d.target, head(li - bank[brute]).argmax(1))
    s = ssl_targets(embed, head, x, bank, "sigma")
    assert torch.equal(s.target, head(li + bank[brute]).argmax(1))
    w = ssl_targets(embed, head, x, bank, "without")
    assert torch.equal(w.target, m(x).argmax(1))  # "w/o" = the SSL model's own prediction
    assert (w.neighbour == -1).all()
    with pytest.raises(ValueError, match="variant"):
        ssl_targets(embed, head, x, bank, "other")


def test_an_image_in_the_bank_is_not_its_own_neighbour_when_excluded():
    m = _model()
    embed, head = penultimate_split(m)
    ref = torch.rand(10, 3, 8, 8)
    bank = latent_bank(embed, ref)
    own = ssl_targets(embed, head, ref[:4], bank, "delta")
    assert torch.equal(own.neighbour, torch.arange(4))  # distance 0 to itself ...
    assert torch.equal(
        own.target, head(torch.zeros(4, 8)).argmax(1)
    )  # ... so S_I = 0: only the bias speaks
    ex = ssl_targets(embed, head, ref[:4], bank, "delta", exclude=torch.arange(4))
    assert not (ex.neighbour == torch.arange(4)).any()


def test_explain_ssl_explains_the_algorithm2_class():
    m = _model()
    embed, head = penultimate_split(m)
    bank = latent_bank(embed, torch.rand(12, 3, 8, 8))
    x = torch.rand(3, 3, 8, 8)
    seen = {}

    def fake_explain(model, xb, target, method):
        seen["target"], seen["method"] = target.clone(), method
        return torch.zeros(len(xb), 8, 8)

    maps, tg = explain_ssl(m, x, bank, "delta", method="rap", explain_fn=fake_explain)
    assert maps.shape == (3, 8, 8)
    assert torch.equal(seen["target"], tg.target) and seen["method"] == "rap"


def test_with_agf_maps_follow_the_chosen_class():
    agf_mod = pytest.importorskip("visxai.methods.agf")
    m = _model(1)
    embed, head = penultimate_split(m)
    bank = latent_bank(embed, torch.rand(16, 3, 8, 8))
    x = torch.rand(4, 3, 8, 8)

    def run_agf(model, xb, target, method):
        return agf_mod.agf(model, xb, target)

    maps, tg = explain_ssl(m, x, bank, "delta", explain_fn=run_agf)
    assert maps.shape == (4, 8, 8) and torch.isfinite(maps).all()
    direct = agf_mod.agf(m, x, tg.target)
    assert torch.allclose(maps, direct)
