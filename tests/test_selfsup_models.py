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


def test_committed_classifiers_are_competent_on_held_out_images():
    """Table 3b needs a classifier that finds the objects, Fig. 4b probes that beat chance: the
    held-out metrics stored with the committed checkpoints (1,000 synthetic test images), and
    the probes re-measured here on 300 of them (macro AP well above the label prevalence)."""
    from visxai.models.rotnet_probes import load_probes
    from visxai.models.selfsup_miniatures import load_rotnet, multilabel_metrics, synthetic_splits
    from visxai.models.training import checkpoint_metadata

    ml = checkpoint_metadata(find_checkpoint("synthetic-multilabel", MULTILABEL_CONFIG))["metrics"]
    assert ml["test_macro_ap"] > 3 * ml["label_prevalence"]
    assert ml["test_exact_match"] > 0.5 and ml["test_object_recall"] > 0.7
    test = synthetic_splits(1, 300, 0)[1]
    for probe in load_probes(load_rotnet())[1:]:  # blocks 2-4
        with torch.no_grad():
            q = multilabel_metrics(torch.sigmoid(probe(test.images)), test)
        assert q["test_macro_ap"] > 1.75 * q["label_prevalence"]
