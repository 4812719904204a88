"""SimCLRv2 TensorFlow-checkpoint conversion without TensorFlow (Pixel Invariance, paper profile).

The fixture ``tests/data/simclrv2_tiny`` was written by TensorFlow 2.21 running the SimCLR authors'
own TF1 ResNet code (depth 50, width multiplier 1/16, random weights), with TensorFlow's outputs
for two 40x40 images: see ``tests/data/make_simclrv2_fixture.py``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from visxai.data.tf_checkpoint import TFCheckpoint, TFCheckpointError
from visxai.models.simclrv2_tf import SimCLRv2, TFSameMaxPool, load_simclrv2, simclrv2_state

FIXTURE = Path(__file__).parent / "data" / "simclrv2_tiny"


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(FIXTURE / "expected.npz"))


def test_reader_lists_variables_shapes_and_dtypes():
    ckpt = TFCheckpoint(FIXTURE)
    assert ckpt.prefix.name == "model.ckpt-250228"
    # 279 model variables, stored as EMA and raw copies, 10 optimizer slots and the step counter
    ema = [k for k in ckpt.keys() if k.startswith("ema_model/")]
    slots = [k for k in ckpt.keys() if k.endswith("/Momentum")]
    assert len(ema) == 279 and slots and len(ckpt) == 2 * len(ema) + len(slots) + 1
    assert ckpt.shape("ema_model/base_model/conv2d/kernel") == (7, 7, 3, 4)  # HWIO
    step = ckpt["global_step"]
    assert step.dtype == torch.int64 and int(step) == 250228
    assert ckpt["ema_model/base_model/conv2d/kernel"].dtype == torch.float32
    # the fixture stores raw = EMA + 1: the reader finds each tensor at its own offset
    ema, raw = ckpt["ema_model/base_model/conv2d_52/kernel"], ckpt["base_model/conv2d_52/kernel"]
    torch.testing.assert_close(raw, ema + 1)
    assert "base_model/conv2d/kernel" in ckpt and "nope" not in ckpt
    with pytest.raises(KeyError, match="nope"):
        ckpt["nope"]


def test_converted_model_matches_tensorflow_outputs(expected):
    model = load_simclrv2(FIXTURE)
    x = torch.from_numpy(expected["images"])
    with torch.no_grad():
        hiddens, proj = model.embed(x), model(x)
    assert hiddens.shape == (2, 128) and proj.shape == (2, 8)  # 2048 * 1/16, proj_out_dim 8
    scale = float(np.abs(expected["hiddens"]).max())
    np.testing.assert_allclose(hiddens.numpy(), expected["hiddens"], rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(
        proj.numpy(),
        expected["projection"],
        rtol=1e-4,
        atol=1e-5 * np.abs(expected["projection"]).max(),
    )


def test_depth_and_width_read_off_the_checkpoint():
    state, depth, width = simclrv2_state(TFCheckpoint(FIXTURE))
    assert (depth, width) == (50, 1 / 16)
    assert sum(k.endswith(".weight") and v.dim() == 4 for k, v in state.items()) == 53
    # the last head BN has no learned bias in TF (center=False): fixed at zero
    assert torch.count_nonzero(state["head.7.bias"]) == 0


def test_ema_false_takes_the_raw_weights():
    ckpt = TFCheckpoint(FIXTURE)
    ema, _, _ = simclrv2_state(ckpt, ema=True)
    raw, _, _ = simclrv2_state(ckpt, ema=False)
    torch.testing.assert_close(raw["encoder.stem.0.weight"], ema["encoder.stem.0.weight"] + 1)


def test_tf_same_max_pool_pads_right_and_bottom_only():
    x = torch.randn(1, 2, 8, 7)
    out = TFSameMaxPool()(x)
    # even size 8: output 4, windows start at 0, 2, 4, 6 (TF pads 0 before, 1 after)
    # odd size 7: output 4, TF pads 1 before and 1 after (as torch's padding=1)
    ref = F.max_pool2d(F.pad(x, (1, 1, 0, 1), value=float("-inf")), 3, 2)
    torch.testing.assert_close(out, ref)
    assert out.shape[-2:] == (4, 4)
    assert not torch.equal(
        out, F.max_pool2d(x, 3, 2, padding=1)
    )  # torch's symmetric padding differs


def test_wrong_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TensorFlow checkpoint"):
        TFCheckpoint(tmp_path / "model.ckpt-1")
    (tmp_path / "bad.index").write_bytes(b"\0" * 100)
    with pytest.raises(TFCheckpointError, match="magic"):
        TFCheckpoint(tmp_path / "bad.index")
    # a checkpoint without the SimCLRv2 scopes
    for f in FIXTURE.glob("model.ckpt-250228.*"):
        shutil.copy(f, tmp_path / f.name)
    ckpt = TFCheckpoint(tmp_path / "model.ckpt-250228.index")
    ckpt._entries = {k: v for k, v in ckpt._entries.items() if not k.startswith("ema_model/")}
    with pytest.raises(ValueError, match="try ema=False"):
        simclrv2_state(ckpt, ema=True)
    # truncated data shard
    data = tmp_path / "model.ckpt-250228.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    with pytest.raises(TFCheckpointError, match="truncated"):
        TFCheckpoint(tmp_path / "model.ckpt-250228")["ema_model/head_contrastive/nl_2/dense/kernel"]
    with pytest.raises(TFCheckpointError, match="exactly one"):
        TFCheckpoint(tmp_path)  # a folder with two *.index files


def test_load_model_reads_the_cached_tensorflow_checkpoint(tmp_path, monkeypatch, expected):
    from visxai.data import ArtefactMissing
    from visxai.models import load_model

    monkeypatch.setenv("VISXAI_DATA", str(tmp_path))
    with pytest.raises(ArtefactMissing, match="python -m visxai fetch simclrv2-r50-1x"):
        load_model("simclrv2-r50-1x", "paper")
    (tmp_path / "simclrv2-r50-1x").mkdir()
    for f in FIXTURE.glob("model.ckpt-250228.*"):
        shutil.copy(f, tmp_path / "simclrv2-r50-1x" / f.name)
    lm = load_model("simclrv2-r50-1x", "paper")
    net, mean, std = lm.model, lm.mean, lm.std
    assert isinstance(net, SimCLRv2) and not net.training
    assert (mean, std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # SimCLR takes [0, 1] images
    x = torch.from_numpy(expected["images"])
    with torch.no_grad():
        out = net(x)
        torch.testing.assert_close(lm.head(lm.embed(x)), out)
    np.testing.assert_allclose(out.numpy(), expected["projection"], rtol=1e-4, atol=1e-3)
