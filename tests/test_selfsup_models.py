"""The project's RotNet, multi-label CNN and linear probes (notebook 02, part 2)."""

import torch

from visxai.models.rotnet_probes import PROBE_CONFIG, ProbedModel
from visxai.models.selfsup_miniatures import (
    MULTILABEL_CONFIG,
    ROTNET_CONFIG,
    MultiLabelCNN,
    RotNet,
    rotate,
    rotation_views,
)
from visxai.models.training import find_checkpoint


def test_rotations():
    x = torch.rand(3, 3, 8, 8)
    assert torch.equal(rotate(rotate(x, 1), 3), x)
    k = torch.tensor([0, 1, 2])
    r = rotate(x, k)
    for i in range(3):
        assert torch.equal(r[i], torch.rot90(x[i], int(k[i]), dims=(1, 2)))
    views, labels = rotation_views(x)
    assert views.shape == (12, 3, 8, 8) and labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3


def test_models_shapes_embed_and_agf_support():
    from visxai.methods.agf import agf

    torch.manual_seed(0)
    rot, ml = RotNet().eval(), MultiLabelCNN().eval()
    x = torch.rand(2, 3, 64, 64)
    assert rot(x).shape == (2, 4) and ml(x).shape == (2, 10)
    assert torch.allclose(rot.head(rot.embed(x)), rot(x), atol=1e-6)
    probe = ProbedModel(rot.blocks[:2], rot.block_channels[1], pool=PROBE_CONFIG["pool"]).eval()
    assert probe(x).shape == (2, 10)
    assert not any(p.requires_grad for p in probe.trunk.parameters())
    for m in (rot, ml, probe):  # only layers AGF supports
        maps = agf(m, x, torch.tensor([0, 1]))
        assert maps.shape == (2, 64, 64) and torch.isfinite(maps).all()


def test_checkpoints_are_committed():
    # notebooks and CI load these instead of retraining
    assert find_checkpoint("synthetic-rotnet", ROTNET_CONFIG) is not None
    assert find_checkpoint("synthetic-multilabel", MULTILABEL_CONFIG) is not None
