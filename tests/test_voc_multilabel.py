"""The VOC multi-label recipe (AGF Table 3b) on a tiny fake VOCdevkit: data, training, cache,
loading, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from visxai.data import ArtefactMissing
from visxai.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from visxai.data.segmentation_sets import VOC_CLASSES, load_voc2012_segmentation
from visxai.data.voc import VOCMultiLabel, voc_multi_hot
from visxai.models import load_model
from visxai.models import training as tr
from visxai.models import voc_multilabel as vml

CAT, DOG = VOC_CLASSES.index("cat"), VOC_CLASSES.index("dog")  # 7, 11 (mask ids 8, 12)
COLOUR = {CAT: (220, 30, 30), DOG: (30, 30, 220)}


def _save_mask(mask: np.ndarray, path: Path) -> None:
    png = Image.fromarray(mask, mode="P")
    png.putpalette([v for i in range(256) for v in (i, i, i)])
    png.save(path)


def _fake_voc(root: Path, splits: dict[str, list[str]]) -> dict[str, int]:
    """VOCdevkit/VOC2012 with red "cat" and blue "dog" images (whole-image masks, a boundary
    line)."""
    base = root / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / d).mkdir(parents=True, exist_ok=True)
    cls_of = {}
    for split, ids in splits.items():
        (base / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for k, name in enumerate(ids):
            cls = CAT if k % 2 == 0 else DOG
            cls_of[name] = cls
            rng = np.random.default_rng(k)
            img = np.clip(
                np.array(COLOUR[cls]) + rng.integers(-20, 20, (24, 32, 3)), 0, 255
            ).astype(np.uint8)
            Image.fromarray(img).save(base / "JPEGImages" / f"{name}.jpg")
            mask = np.full((24, 32), cls + 1, dtype=np.uint8)
            mask[:, 15] = 255
            _save_mask(mask, base / "SegmentationClass" / f"{name}.png")
    return cls_of


TRAIN_IDS = [f"2008_{i:06d}" for i in range(8)]
VAL_IDS = [f"2009_{i:06d}" for i in range(4)]


@pytest.fixture()
def voc(tmp_path, monkeypatch):
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path / "cache"))
    root = tmp_path / "voc"
    _fake_voc(root, {"train": TRAIN_IDS, "val": VAL_IDS})
    return root


def _tiny(**kw):
    cfg = dict(
        arch="tiny-vgg",
        init=None,
        resize=20,
        crop=16,
        epochs=2,
        batch_size=4,
        lr=1e-2,
        weight_decay=0.0,
    )
    cfg.update(kw)
    return vml.recipe_config(**cfg)


def _train(cfg, root, **kw):
    return vml.train_voc_multilabel(
        cfg, root=root, device="cpu", num_workers=0, progress=False, **kw
    )


def test_recipe_is_the_authors_and_schedule_matches_their_call_order():
    r = vml.RECIPE
    assert (r["arch"], r["init"], r["num_classes"], r["optimizer"]) == (
        "vgg19",
        "vgg19-imagenet",
        20,
        "adam",
    )
    assert (r["lr"], r["weight_decay"], r["batch_size"], r["resize"], r["crop"]) == (
        1e-4,
        5e-4,
        32,
        321,
        224,
    )
    lrs = [vml._lr_at(r, e) for e in range(41)]
    assert (
        lrs[0] == lrs[18] == 1e-4
        and lrs[19] == pytest.approx(2e-5)
        and lrs[39] == pytest.approx(4e-6)
    )
    with pytest.raises(KeyError, match="unknown recipe keys"):
        vml.recipe_config(epoch=3)


def test_dataset_labels_augmentation_and_eval_inputs(voc):
    ds = VOCMultiLabel(voc, "train", train=True, resize=20, crop=16)
    assert len(ds) == 8
    x, y = ds[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y.shape == (20,)
    assert y.nonzero().flatten().tolist() == [CAT]  # 0 and 255 are not labels
    assert ds[1][1].nonzero().flatten().tolist() == [DOG]
    # eval inputs are exactly Table 3b's: load_voc2012_segmentation, normalised with ImageNet
    # mean/std
    ev = VOCMultiLabel(voc, "val", train=False, resize=16, crop=16)
    imgs, labels, _ = load_voc2012_segmentation("val", root=voc, size=16)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for i in range(len(ev)):
        xe, ye = ev[i]
        assert torch.allclose(xe, (imgs[i] - mean) / std) and torch.equal(ye, labels[i])
    with pytest.raises(ValueError, match="crop"):
        VOCMultiLabel(voc, "train", resize=8, crop=16)
    mask = torch.tensor([[0, 255, 8], [8, 15, 0]])  # labels = classes in the (augmented) mask only
    assert voc_multi_hot(mask).nonzero().flatten().tolist() == [CAT, VOC_CLASSES.index("person")]


def test_sbd_is_added_deduplicated_and_without_voc_val(voc, tmp_path):
    from scipy import io

    sbd = tmp_path / "sbd"
    (sbd / "img").mkdir(parents=True)
    (sbd / "cls").mkdir()
    ids = [
        "2010_000001",
        TRAIN_IDS[0],
        VAL_IDS[0],
        "2010_000001",
    ]  # new, duplicate of VOC train, VOC val, repeat
    (sbd / "train.txt").write_text("\n".join(ids) + "\n")
    seg = np.full((24, 32), VOC_CLASSES.index("person") + 1, dtype=np.uint8)
    seg[:4] = 0
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(sbd / "img" / "2010_000001.jpg")
    io.savemat(sbd / "cls" / "2010_000001.mat", {"GTcls": {"Segmentation": seg}})
    ds = VOCMultiLabel(voc, "train", train=True, sbd_root=sbd, resize=20, crop=16)
    assert len(ds) == len(TRAIN_IDS) + 1 and ds.items[-1][1].suffix == ".mat"
    assert ds[len(ds) - 1][1].nonzero().flatten().tolist() == [VOC_CLASSES.index("person")]
    with pytest.raises(ArtefactMissing, match="benchmark_RELEASE"):
        VOCMultiLabel(voc, "train", sbd_root=tmp_path / "nowhere")


def test_checkpoint_cached_by_config_hash_and_retraining_is_identical(voc, monkeypatch):
    cfg = _tiny()
    model, path, meta = _train(cfg, voc)
    assert path.name == f"vgg19-voc-multilabel-{tr.config_hash(cfg)}.safetensors"
    assert path.parent == tr.model_cache_dir() and meta["config"] == cfg
    assert (
        meta["metrics"]["n_train"] == 8
        and meta["metrics"]["n_val"] == 4
        and 0 <= meta["metrics"]["val_mAP"] <= 1
    )
    digest = tr.sha256_file(path)

    def boom(*a, **k):
        raise AssertionError("must load, not train")

    with monkeypatch.context() as m:  # same config: loaded from the cache, identical weights
        m.setattr(vml, "_fit", boom)
        again, path2, _ = _train(cfg, voc)
        assert path2 == path
        assert all(
            torch.equal(a, b)
            for a, b in zip(model.state_dict().values(), again.state_dict().values())
        )
        loaded = vml.load_voc_multilabel(cfg)
        assert all(
            torch.equal(a, b)
            for a, b in zip(model.state_dict().values(), loaded.state_dict().values())
        )
    path.unlink()  # same seed, trained again: the same bytes
    retrained, _, _ = _train(cfg, voc)
    assert tr.sha256_file(path) == digest
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), retrained.state_dict().values())
    )
    _, other, _ = _train(_tiny(seed=1), voc)  # another config: another file
    assert other != path and tr.sha256_file(other) != digest


def test_loss_decreases_on_a_separable_set(voc):
    _, _, meta = _train(_tiny(epochs=6), voc, evaluate=False)
    losses = meta["metrics"]["loss_per_epoch"]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]


class _Swap(nn.Module):
    def forward(self, z):
        z = z.clone()
        z[:, [CAT, DOG]] = z[:, [DOG, CAT]]
        return z


def test_map_helper(voc):
    class Oracle(nn.Module):  # red -> cat, blue -> dog, from the mean colour
        def forward(self, x):
            red, blue = x[:, 0].mean((1, 2)), x[:, 2].mean((1, 2))
            out = torch.full((len(x), 20), -10.0)
            out[:, CAT], out[:, DOG] = 5 * (red - blue), 5 * (blue - red)
            return out

    res = vml.voc_multilabel_map(Oracle(), "val", root=voc, size=16, device="cpu")
    assert (
        res["mAP"] == 1.0
        and res["n_images"] == 4
        and res["n_classes"] == 2
        and set(res["ap"]) == {"cat", "dog"}
    )
    assert res["exact_match@0.5"] == 1.0 and res["accuracy@0.5"] == 1.0
    first_two = vml.voc_multilabel_map(Oracle(), "val", n=2, root=voc, size=16, device="cpu")
    assert first_two["n_images"] == 2 and first_two["mAP"] == 1.0
    swapped = vml.voc_multilabel_map(
        nn.Sequential(Oracle(), _Swap()), "val", root=voc, size=16, device="cpu"
    )
    assert (
        swapped["mAP"] < 0.75 and swapped["exact_match@0.5"] == 0.0
    )  # cat/dog scores swapped: every image wrong
    with pytest.raises(ValueError, match="20"):
        vml.voc_multilabel_map(
            nn.Sequential(Oracle(), nn.Linear(20, 3)), "val", root=voc, size=16, device="cpu"
        )


def test_load_model_gives_the_trained_20_label_classifier(voc, monkeypatch):
    monkeypatch.setattr(
        vml, "RECIPE", _tiny()
    )  # the default recipe, shrunk: same code path as VGG-19
    model, path, _ = _train(vml.recipe_config(), voc)
    lm = load_model("vgg19-voc-multilabel", profile="paper", channels_last=False)  # bit-equal
    assert lm.labels == list(VOC_CLASSES) and lm.mean == IMAGENET_MEAN and lm.std == IMAGENET_STD
    assert lm.input_size == (16, 16) and lm.info["checkpoint"] == str(path) and "val_mAP" in lm.info
    img = Image.open(voc / "VOCdevkit/VOC2012/JPEGImages" / f"{VAL_IDS[0]}.jpg")
    x = lm.preprocess(img)[None]
    assert x.shape == (1, 3, 16, 16)
    assert lm.model(x).shape == (1, 20) and torch.equal(lm.model(x), model(x))


def test_vgg19_architecture_without_weights():
    lm = load_model("vgg19-voc-multilabel", profile="paper", pretrained=False)
    assert (
        isinstance(lm.model.classifier[6], nn.Linear) and lm.model.classifier[6].out_features == 20
    )
    with torch.no_grad():
        assert lm.model(torch.zeros(1, 3, 32, 32)).shape == (1, 20)
    assert lm.input_size == (224, 224) and len(lm.labels) == 20


def test_clear_errors_name_the_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path / "cache"))
    with pytest.raises(vml.CheckpointMissing) as err:
        load_model("vgg19-voc-multilabel", profile="paper")
    msg = str(err.value)
    assert isinstance(err.value, ArtefactMissing)
    assert (
        "python -m visxai train vgg19-voc-multilabel" in msg
        and "python -m visxai fetch voc2012 vgg19-imagenet" in msg
    )
    with pytest.raises(ArtefactMissing, match="python -m visxai fetch voc2012"):
        vml.train_voc_multilabel(device="cpu")
    root = tmp_path / "voc"
    _fake_voc(root, {"train": TRAIN_IDS})
    with pytest.raises(ArtefactMissing, match="python -m visxai fetch vgg19-imagenet"):
        vml.train_voc_multilabel(root=root, device="cpu")
    with pytest.raises(ValueError, match="sbd_root"):
        vml.train_voc_multilabel(vml.recipe_config(sbd=True), root=root, device="cpu")


def test_cli_train(voc, monkeypatch, capsys):
    from visxai import cli

    assert (
        cli.main(
            [
                "train",
                "vgg19-voc-multilabel",
                "--root",
                str(voc),
                "--device",
                "cpu",
                "--workers",
                "0",
            ]
        )
        == 2
    )
    assert "python -m visxai fetch vgg19-imagenet" in capsys.readouterr().err
    monkeypatch.setattr(vml, "RECIPE", _tiny())
    args = [
        "train",
        "vgg19-voc-multilabel",
        "--root",
        str(voc),
        "--device",
        "cpu",
        "--workers",
        "0",
        "--quiet",
    ]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert (
        f"vgg19-voc-multilabel-{tr.config_hash(vml.recipe_config())}.safetensors" in out
        and "val_mAP" in out
    )
    assert load_model("vgg19-voc-multilabel").labels == list(VOC_CLASSES)
    assert cli.main(args[:2] + ["--epochs", "1"] + args[2:]) == 0
    assert "load_voc_multilabel" in capsys.readouterr().out
