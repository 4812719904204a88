"""The paper's SSL models (SCAN, SeLa, RotNet) load from checkpoints laid out like the authors'
releases.

The real files are not reachable here, so each test writes a FAKE checkpoint with the authors'
exact key layout (written out below from their code, independently of our modules): SCAN's
``{'model': {'backbone.*', 'cluster_head.0..9.*'}, 'head': numpy.int64}`` in PyTorch's legacy
format with numpy-1 module names (as saved in 2020), SeLa's pre-activation ResNet-50 with
``top_layer0..9`` inside ``pretrained.zip``, and the linear-probes AlexNet with BN and a 4-way
``top_layer`` under ``'state_dict'`` (small widths: the loader reads them from the weights).
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from visxai.data import ArtefactMissing
from visxai.methods.agf_selfsupervised import explain_ssl, latent_bank, penultimate_split
from visxai.models import load_model
from visxai.models import selfsup_checkpoints as P

NAMES = {"scan": "scan-r50", "sela": "sela-r50", "rotnet": "rotnet-alexnet"}

torch.set_num_threads(1)
GEN = torch.Generator().manual_seed(0)
K_SCAN, K_SELA = 7, 5  # small cluster counts (the release: 1000 and 3000)
ROT_WIDTHS, ROT_HIDDEN = (8, 16, 24, 24, 16), 32


def _rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=GEN) * 0.05


def _bn(prefix: str, c: int) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": 1 + _rand(c),
        f"{prefix}.bias": _rand(c),
        f"{prefix}.running_mean": _rand(c),
        f"{prefix}.running_var": 0.5 + torch.rand(c, generator=GEN),
        f"{prefix}.num_batches_tracked": torch.tensor(100),
    }


# --------------------------------------------------------------------------- fake checkpoints
def torchvision_r50_keys(prefix: str) -> dict[str, torch.Tensor]:
    """torchvision ResNet-50 without fc, as SCAN's backbone (models/resnet.py: fc = Identity)."""
    s: dict[str, torch.Tensor] = {
        f"{prefix}conv1.weight": _rand(64, 3, 7, 7),
        **_bn(f"{prefix}bn1", 64),
    }
    cin = 64
    for li, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 1):
        for b in range(blocks):
            p = f"{prefix}layer{li}.{b}."
            s[p + "conv1.weight"] = _rand(planes, cin, 1, 1)
            s.update(_bn(p + "bn1", planes))
            s[p + "conv2.weight"] = _rand(planes, planes, 3, 3)
            s.update(_bn(p + "bn2", planes))
            s[p + "conv3.weight"] = _rand(4 * planes, planes, 1, 1)
            s.update(_bn(p + "bn3", 4 * planes))
            if b == 0:
                s[p + "downsample.0.weight"] = _rand(4 * planes, cin, 1, 1)
                s.update(_bn(p + "downsample.1", 4 * planes))
            cin = 4 * planes
    return s


def fake_scan() -> dict:
    model = torchvision_r50_keys("backbone.")
    for h in range(10):
        model[f"cluster_head.{h}.weight"] = _rand(K_SCAN, 2048)
        model[f"cluster_head.{h}.bias"] = _rand(K_SCAN)
    return {
        "model": model,
        "head": np.argmin([3.0, 2.0, 5.0, 1.0, 4.0, 6.0, 7.0, 8.0, 9.0, 9.5]),
    }  # np.int64(3)


def save_like_2020(obj: object, path) -> None:
    """Legacy (non-zip) torch format with numpy-1 module names, as PyTorch 1.4 + numpy 1.x wrote
    it."""
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    raw = buf.getvalue().replace(
        b"numpy._core.multiarray\nscalar", b"numpy.core.multiarray\nscalar"
    )
    path.write_bytes(raw)


def fake_sela() -> dict[str, torch.Tensor]:
    """self-label models/resnetv2.py: resnetv2(nlayers=50, num_classes=[3000]*10) state_dict."""
    s: dict[str, torch.Tensor] = {"features.0.weight": _rand(64, 3, 7, 7)}
    cin = 64
    for si, (planes, blocks, stride) in enumerate(
        ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
    ):
        for b in range(blocks):
            p = f"features.{si + 2}.{b}."
            st = stride if b == 0 else 1
            s.update(_bn(p + "bn1", cin))
            s[p + "conv1.weight"] = _rand(planes, cin, 1, 1)
            s.update(_bn(p + "bn2", planes))
            s[p + "conv2.weight"] = _rand(planes, planes, 3, 3)
            s.update(_bn(p + "bn3", planes))
            s[p + "conv3.weight"] = _rand(4 * planes, planes, 1, 1)
            if st != 1 or cin != 4 * planes:
                s[p + "shortcut.0.weight"] = _rand(4 * planes, cin, 1, 1)
            cin = 4 * planes
    for h in range(10):
        s[f"top_layer{h}.weight"] = _rand(K_SELA, 2048)
        s[f"top_layer{h}.bias"] = _rand(K_SELA)
    return s


def fake_rotnet_state(heads: list[int] | None = None) -> dict[str, torch.Tensor]:
    """linear-probes alexnet.py: alexnet(bn=True, out=[4]) with (small) widths."""
    s: dict[str, torch.Tensor] = {}
    cin = 3
    for idx, w, k in zip((0, 4, 8, 11, 14), ROT_WIDTHS, (11, 5, 3, 3, 3)):
        s[f"features.{idx}.weight"] = _rand(w, cin, k, k) * 4
        s[f"features.{idx}.bias"] = _rand(w)
        s.update(_bn(f"features.{idx + 1}", w))
        cin = w
    s["classifier.1.weight"] = _rand(ROT_HIDDEN, cin * 36)
    s["classifier.1.bias"] = _rand(ROT_HIDDEN)
    s["classifier.4.weight"] = _rand(ROT_HIDDEN, ROT_HIDDEN)
    s["classifier.4.bias"] = _rand(ROT_HIDDEN)
    if heads is None:
        s["top_layer.weight"], s["top_layer.bias"] = _rand(4, ROT_HIDDEN), _rand(4)
    else:
        for h, k in enumerate(heads):
            s[f"top_layer{h}.weight"], s[f"top_layer{h}.bias"] = _rand(k, ROT_HIDDEN), _rand(k)
    return s


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    """The three fake releases, written once into a fake artefact cache."""
    root = tmp_path_factory.mktemp("cache")
    scan, sela, rot = fake_scan(), fake_sela(), fake_rotnet_state()
    (root / "scan-r50-imagenet").mkdir()
    save_like_2020(scan, root / "scan-r50-imagenet" / "scan_imagenet_resnet50.pth.tar")
    (root / "sela-r50-imagenet").mkdir()
    member = io.BytesIO()
    torch.save(sela, member)
    with zipfile.ZipFile(root / "sela-r50-imagenet" / "pretrained.zip", "w") as zf:
        zf.writestr("alexnet-10x3k-wRot.pth", b"not used")
        zf.writestr(P.SELA_MEMBER, member.getvalue())
    (root / "rotnet-alexnet-imagenet").mkdir()
    torch.save(
        {"epoch": 400, "arch": "alexnet", "state_dict": {"module." + k: v for k, v in rot.items()}},
        root / "rotnet-alexnet-imagenet" / "rotnet_alexnet.pth",
    )
    return {"root": root, "scan": scan, "sela": sela, "rotnet": rot}


@pytest.fixture
def cache(fakes, monkeypatch):
    monkeypatch.setenv("VISXAI_DATA", str(fakes["root"]))
    return fakes


# ------------------------------------------------------------------------ reference forwards
def _bn_f(x, s, p):
    return F.batch_norm(
        x,
        s[p + ".running_mean"],
        s[p + ".running_var"],
        s[p + ".weight"],
        s[p + ".bias"],
        False,
        0.0,
        1e-5,
    )


def sela_reference(s: dict[str, torch.Tensor], x: torch.Tensor, head: int) -> torch.Tensor:
    """The authors' PreActResNet forward (functional relu, ``out += shortcut``) on the raw state."""
    out = F.max_pool2d(F.conv2d(x, s["features.0.weight"], stride=2, padding=3), 3, 2, 1)
    for si, (blocks, stride) in enumerate(((3, 1), (4, 2), (6, 2), (3, 2))):
        for b in range(blocks):
            p = f"features.{si + 2}.{b}."
            a = F.relu(_bn_f(out, s, p + "bn1"))
            short = (
                F.conv2d(a, s[p + "shortcut.0.weight"], stride=stride if b == 0 else 1)
                if p + "shortcut.0.weight" in s
                else out
            )
            y = F.conv2d(a, s[p + "conv1.weight"])
            y = F.conv2d(
                F.relu(_bn_f(y, s, p + "bn2")),
                s[p + "conv2.weight"],
                stride=stride if b == 0 else 1,
                padding=1,
            )
            y = F.conv2d(F.relu(_bn_f(y, s, p + "bn3")), s[p + "conv3.weight"])
            y += short
            out = y
    z = F.adaptive_avg_pool2d(out, 1).flatten(1)
    return F.linear(z, s[f"top_layer{head}.weight"], s[f"top_layer{head}.bias"])


def alexnet_reference(s: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """linear-probes AlexNet.forward (eval) on the raw state."""
    for idx, (st, pad), pool in zip(
        (0, 4, 8, 11, 14), ((4, 2), (1, 2), (1, 1), (1, 1), (1, 1)), (1, 1, 0, 0, 1)
    ):
        x = F.relu(
            _bn_f(
                F.conv2d(x, s[f"features.{idx}.weight"], s[f"features.{idx}.bias"], st, pad),
                s,
                f"features.{idx + 1}",
            )
        )
        if pool:
            x = F.max_pool2d(x, 3, 2)
    x = x.view(x.size(0), -1)
    x = F.relu(F.linear(x, s["classifier.1.weight"], s["classifier.1.bias"]))
    x = F.relu(F.linear(x, s["classifier.4.weight"], s["classifier.4.bias"]))
    return F.linear(x, s["top_layer.weight"], s["top_layer.bias"])


def _images(n: int, size: int) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=GEN)


def _same(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    for k, v in expected.items():
        assert torch.equal(got[k], v), k


# ------------------------------------------------------------------------------------ tests
def test_scan_loads_strictly_with_the_authors_best_head(cache):
    m = load_model(NAMES["scan"], "paper", channels_last=False)  # the reference's memory format
    # ckpt['head'] (numpy.int64) is honoured
    assert m.info["head_index"] == 3 and isinstance(m.info["head_index"], int)
    assert (m.info["num_classes"], m.info["feature_dim"], m.input_size) == (
        K_SCAN,
        2048,
        (224, 224),
    )
    assert m.mean == (0.485, 0.456, 0.406) and m.std == (0.229, 0.224, 0.225)
    src = cache["scan"]["model"]
    _same(
        m.model,
        {
            "head.weight": src["cluster_head.3.weight"],
            "head.bias": src["cluster_head.3.bias"],
            **{k: v for k, v in src.items() if k.startswith("backbone.")},
        },
    )
    from torchvision.models import resnet50

    ref = resnet50()
    ref.fc = torch.nn.Identity()
    ref.load_state_dict(
        {k.removeprefix("backbone."): v for k, v in src.items() if k.startswith("backbone.")}
    )
    x = _images(2, 64)
    with torch.no_grad():
        z = m.embed(x)
        assert z.shape == (2, 2048) and m.model(x).shape == (2, K_SCAN)
        torch.testing.assert_close(z, ref.eval()(x))
        torch.testing.assert_close(
            m.model(x), F.linear(z, src["cluster_head.3.weight"], src["cluster_head.3.bias"])
        )
    assert load_model(NAMES["scan"], "paper", head=0).info["head_index"] == 0


def test_sela_matches_the_authors_preact_forward_head0(cache):
    m = load_model(NAMES["sela"], "paper")
    assert (m.info["head_index"], m.info["num_classes"], m.info["feature_dim"]) == (0, K_SELA, 2048)
    src = cache["sela"]
    _same(
        m.model,
        {
            **{k: v for k, v in src.items() if k.startswith("features.")},
            "head.weight": src["top_layer0.weight"],
            "head.bias": src["top_layer0.bias"],
        },
    )
    x = _images(2, 64)
    with torch.no_grad():
        assert m.embed(x).shape == (2, 2048)
        torch.testing.assert_close(m.model(x), sela_reference(src, x, 0), rtol=1e-4, atol=1e-5)
    m7 = load_model(NAMES["sela"], "paper", head=7)
    assert torch.equal(m7.head.weight, src["top_layer7.weight"])


def test_rotnet_matches_the_authors_alexnet_and_exposes_probe_blocks(cache):
    m = load_model(NAMES["rotnet"], "paper")
    assert (m.info["head_index"], m.info["num_classes"], m.info["feature_dim"]) == (
        None,
        4,
        ROT_HIDDEN,
    )
    src = cache["rotnet"]
    _same(
        m.model,
        {
            **{k: v for k, v in src.items() if not k.startswith("top_layer")},
            "head.weight": src["top_layer.weight"],
            "head.bias": src["top_layer.bias"],
        },
    )
    x = _images(2, 224)
    with torch.no_grad():
        assert m.embed(x).shape == (2, ROT_HIDDEN)
        torch.testing.assert_close(m.model(x), alexnet_reference(src, x), rtol=1e-4, atol=1e-5)
        blocks = m.model.blocks
        assert len(blocks) == 5 and blocks(x).shape == (2, ROT_WIDTHS[-1], 6, 6)
    assert set(m.model.state_dict()) == {
        k for k in P.AsanoAlexNet(4, ROT_WIDTHS, ROT_HIDDEN).state_dict()
    }


@pytest.mark.parametrize("name,size", [("scan", 64), ("sela", 64), ("rotnet", 224)])
def test_algorithm2_runs_with_agf(cache, name, size):
    m = load_model(NAMES[name], "paper")
    embed, head = penultimate_split(m.model)
    assert head is m.head
    x, ref = _images(1, size), _images(3, size)
    with torch.no_grad():
        torch.testing.assert_close(embed(x), m.embed(x))
    bank = latent_bank(embed, ref)
    assert bank.shape == (3, m.info["feature_dim"])
    maps, tg = explain_ssl(m.model, x, bank, variant="delta", method="agf")
    assert maps.shape == (1, size, size) and torch.isfinite(maps).all() and maps.abs().sum() > 0
    assert 0 <= int(tg.target) < m.info["num_classes"] and 0 <= int(tg.neighbour) < 3
    with torch.no_grad():  # line 5-6 of Alg. 2: t = argmax phi_tau(L_I - L_N)
        assert int(tg.target) == int(m.head(m.embed(x) - bank[tg.neighbour]).argmax())


def test_missing_weights_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path))
    for name, (art, _) in P.PAPER_SELFSUP_ARTEFACTS.items():
        with pytest.raises(ArtefactMissing, match=f"python -m visxai fetch {art}"):
            load_model(NAMES[name], "paper")


def test_wrong_files_give_clear_errors(cache, tmp_path, monkeypatch):
    scan, sela, rot = cache["scan"], cache["sela"], cache["rotnet"]
    with pytest.raises(ValueError, match="SCAN/MoCo pretext"):
        P.scan_state(
            {
                "model": {
                    "backbone.conv1.weight": torch.zeros(1),
                    "contrastive_head.0.weight": torch.zeros(1),
                }
            }
        )
    with pytest.raises(ValueError, match="not a SCAN clustering checkpoint.*multi-head SeLa"):
        P.scan_state(sela)
    with pytest.raises(ValueError, match="cluster heads"):
        P.scan_state(scan, head=12)
    with pytest.raises(ValueError, match="torchvision-style"):
        P.sela_state(
            {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(3000, 2048)}
        )
    with pytest.raises(ValueError, match="not SeLa's pre-activation"):
        P.sela_state(scan["model"])
    with pytest.raises(ValueError, match="several heads"):
        P.rotnet_state(fake_rotnet_state(heads=[3000] * 10))
    with pytest.raises(ValueError, match="4 rotations"):
        P.rotnet_state({**rot, "top_layer.weight": torch.zeros(1000, ROT_HIDDEN)})
    with pytest.raises(ValueError, match="not the linear-probes AlexNet"):
        P.rotnet_state(scan["model"])
    # the prefixed / 'state_dict' forms of SeLa map to the same weights
    assert (
        P.sela_state({"state_dict": {"module." + k: v for k, v in sela.items()}}).keys()
        == P.sela_state(sela).keys()
    )
    # a wrong file in the cache: the loader reports what it is, not a KeyError deep inside
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path))
    (tmp_path / "rotnet-alexnet-imagenet").mkdir()
    (tmp_path / "rotnet-alexnet-imagenet" / "rotnet_alexnet.pth").write_bytes(
        (cache["root"] / "scan-r50-imagenet" / "scan_imagenet_resnet50.pth.tar").read_bytes()
    )
    with pytest.raises(ValueError, match="looks like a SCAN clustering model"):
        load_model(NAMES["rotnet"], "paper")
    (tmp_path / "scan-r50-imagenet").mkdir()
    (tmp_path / "scan-r50-imagenet" / "scan_imagenet_resnet50.pth.tar").write_bytes(
        b"<!DOCTYPE html><html>Google Drive - Virus scan warning</html>"
    )
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_model(NAMES["scan"], "paper")
    (tmp_path / "sela-r50-imagenet").mkdir()
    with zipfile.ZipFile(tmp_path / "sela-r50-imagenet" / "pretrained.zip", "w") as zf:
        zf.writestr("alexnet-10x3k-wRot.pth", b"x")
    with pytest.raises(ValueError, match="no resnet-10x3k.pth"):
        load_model(NAMES["sela"], "paper")


def test_weights_only_still_refuses_arbitrary_objects(tmp_path):
    import argparse

    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(ValueError, match="weights_only"):
        P.load_checkpoint(path)


def test_missing_bn_counters_of_old_checkpoints_are_tolerated():
    rot = {k: v for k, v in fake_rotnet_state().items() if not k.endswith("num_batches_tracked")}
    model = P.build_rotnet({"state_dict": rot})
    assert model.features[1].num_batches_tracked.item() == 0
