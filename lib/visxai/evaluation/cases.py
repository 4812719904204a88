"""The evaluation cases of notebook 02 / AGF: one call gives a protocol's model, items and masks.

:func:`eval_case` replaces the case set-up that notebook 02 and :mod:`visxai.distributed` used to
write each on their own. A case is one of

* a **classification set** (Table 2 / Table 4 / Table 5: ``"fashion-mnist"``, ``"imagenet-val"``)
  with a classifier named by ``model`` (a :func:`visxai.models.load_model` name): items = the first
  ``n`` images, ``targets`` = their ground-truth labels, no masks;
* a **segmentation set** (Table 3: ``"synthetic"``, ``"voc2012"``, ``"imagenet-seg"``): items =
  images. ImageNet-Segmentation (3a): ``targets`` = the top-predicted class, ``masks`` = the
  foreground mask. Multi-label sets (3b, ``multilabel=True``): ``targets`` = the predicted labels
  ``[N, K]`` (sigmoid > 0.5, all of them, as the authors), ``masks`` = the per-pixel class mask
  (0 background, ``c + 1`` class c, 255 unlabelled);
* a **self-supervised model** (Fig. 4a / Table 4: ``"rotnet-synthetic"`` offline, ``"scan"``,
  ``"sela"``, ``"rotnet"`` paper): images, foreground masks, the SSL task's labels where there
  are some (the RotNet's rotation) and Algorithm 2's reference bank.

Missing artefacts raise :class:`~visxai.data.manifest.ArtefactMissing` naming the fetch or train
command, bad names ``ValueError``; the CLI and torchrun entry points turn them into one line.

Written by hand: the notebook's case cells, moved here unchanged in what they compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..data.eval_sets import eval_data
from .protocols import predict

__all__ = [
    "CLASSIFICATION_CASES",
    "SEGMENTATION_CASES",
    "SSL_CASES",
    "EvalCase",
    "eval_case",
    "reference_bank",
]

CLASSIFICATION_CASES = ("fashion-mnist", "imagenet-val")
SEGMENTATION_CASES = ("synthetic", "voc2012", "imagenet-seg")
SSL_CASES = ("rotnet-synthetic", "scan", "sela", "rotnet")
_SSL_DESC = {"rotnet-synthetic": "RotNet (synthetic)", "scan": "SCAN", "sela": "SeLa"}
_SSL_DESC["rotnet"] = "RotNet"
#: the paper's self-supervised checkpoints by case name (visxai.models.load_model names)
_PAPER_SSL = {"scan": "scan-r50", "sela": "sela-r50", "rotnet": "rotnet-alexnet"}


@dataclass
class EvalCase:
    """One protocol's case: the model and its items (images in [0,1], CPU).

    Items are read by index, ``get(idx) -> (images, targets, masks)``, so that torchrun reads one
    chunk at a time (``imagenet-val`` is read lazily); :attr:`images`, :attr:`targets` and
    :attr:`masks` read all ``n`` items once. ``targets`` ``[N]``: the ground-truth label
    (classification sets), the explained class (Table 3a) or the SSL task's label (RotNet: the
    applied rotation; ``None`` for clustering models); multi-label sets (``multilabel``, Table
    3b): the predicted labels ``[N, K]`` (bool), with ``exact_match`` the exact-match accuracy
    of the classifier on them. ``masks`` ``[N,H,W]`` where the protocol has them (3b: the class
    mask). ``image_index``: the image each item belongs to. ``bank`` / ``bank_images``:
    Algorithm 2's reference set (SSL cases) as ``phi_F`` features and, where the
    randomised-model control needs to recompute them, as images. ``loaded``: the
    :class:`~visxai.models.LoadedModel` where the model came through ``load_model``.
    """

    name: str
    desc: str
    model: nn.Module
    model_name: str
    normalize: Callable[[torch.Tensor], torch.Tensor] | None
    n: int
    get: Callable[[torch.Tensor], tuple] = field(repr=False)
    class_names: list[str] | None = None
    note: str = ""
    image_index: torch.Tensor | None = None
    bank: torch.Tensor | None = None
    bank_images: torch.Tensor | None = None
    loaded: Any = None
    multilabel: bool = False
    exact_match: float | None = None
    _all: tuple | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return self.n

    def _items(self) -> tuple:
        if self._all is None:
            self._all = self.get(torch.arange(self.n))
        return self._all

    @property
    def images(self) -> torch.Tensor:
        """All items' images ``[N,C,H,W]`` in [0,1]."""
        return self._items()[0]

    @property
    def targets(self) -> torch.Tensor | None:
        """All items' targets ``[N]`` (or ``None``)."""
        return self._items()[1]

    @property
    def masks(self) -> torch.Tensor | None:
        """All items' masks ``[N,H,W]`` (or ``None``)."""
        return self._items()[2]


def _held(images: torch.Tensor, targets: torch.Tensor | None, masks: Any) -> tuple:
    """``(n, get)`` over tensors held in memory."""

    def get(idx: torch.Tensor) -> tuple:
        return (
            images[idx],
            None if targets is None else targets[idx],
            None if masks is None else masks[idx],
        )

    return len(images), get


def _dev(device: torch.device | str | None) -> torch.device:
    return torch.device(device) if device is not None else torch.device("cpu")


def reference_bank(
    embed: Callable[[torch.Tensor], torch.Tensor],
    data: str,
    start: int,
    n: int,
    *,
    loaded: Any = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Algorithm 2's reference set ``phi_F(x)`` ``[M, D]`` of held-out images of ``data``.

    ``"fashion-mnist"``: the first ``n`` training images (``start`` is ignored: the explained
    images come from the test split); ``"imagenet-val"``: validation images ``start`` ..
    ``start + n`` of the committed subset (disjoint from the first ``start`` explained ones), read
    in chunks of 250 through ``loaded.preprocess``. ``embed`` takes images in [0,1], or
    ``normalize(images)`` when ``normalize`` is given.
    """
    from ..methods.agf_selfsupervised import latent_bank

    if normalize is not None:
        embed_raw = embed

        def embed(z: torch.Tensor) -> torch.Tensor:
            return embed_raw(normalize(z))

    if data == "fashion-mnist":
        from ..data import load_fashion_mnist

        return latent_bank(embed, load_fashion_mnist("train")[0][:n].to(_dev(device)))
    if data == "imagenet-val":
        n_items, get = eval_data("imagenet-val", start + n, seed, loaded)
        chunks = torch.arange(start, n_items).split(250)
        return torch.cat([latent_bank(embed, get(idx)[0], device=device) for idx in chunks])
    raise ValueError(f"no reference bank for {data!r}: fashion-mnist | imagenet-val")


def _classification_case(
    name: str, profile: str, model: str | None, n: int, seed: int, device: torch.device
) -> EvalCase:
    from ..models import load_model

    if model is None:
        raise ValueError(f"eval_case({name!r}) needs model= (a visxai.models.load_model name)")
    lm = load_model(model, profile=profile, device=str(device))
    lm.model.eval()
    n_items, get = eval_data(name, n, seed, lm)  # imagenet-val: read lazily, by index
    return EvalCase(
        name,
        name,
        lm.model,
        lm.name,
        lm.normalize,
        n_items,
        get,
        list(lm.labels),
        note=f"{lm.name}, first {n_items} images of {name}",
        loaded=lm,
    )


def _segmentation_case(
    name: str, profile: str, n: int, seed: int, device: torch.device, pool: Any, model: str | None
) -> EvalCase:
    from ..models import load_model

    if name == "imagenet-seg":  # Table 3a: the paper's VGG-19, explaining the top-predicted class
        from ..data.segmentation_sets import load_imagenet_segmentation

        lm = load_model(model or "vgg19", profile=profile, device=str(device))
        x, masks = load_imagenet_segmentation(n)  # ArtefactMissing names the fetch command
        cls = predict(lm.model, x, lm.normalize).argmax(1).cpu()
        return EvalCase(
            name,
            "ImageNet-Segmentation",
            lm.model,
            lm.name,
            lm.normalize,
            *_held(x, cls, masks),
            list(lm.labels),
            f"{len(x)} images, explained class = top prediction",
            image_index=torch.arange(len(x)),
            loaded=lm,
        )
    # Table 3b (the authors' protocol): a multi-label classifier; items are images, every label with
    # p > 0.5 is explained and the maps are scored together against the per-pixel class mask
    loaded = None
    if name == "voc2012":
        from ..data.segmentation_sets import VOCMasks, load_voc2012_segmentation

        loaded = load_model(model or "vgg19-voc-multilabel", profile=profile, device=str(device))
        x_all, y_all, m_all = load_voc2012_segmentation("val", n)
        model, norm, model_name = loaded.model, loaded.normalize, loaded.name
        labels, masks_all, desc = list(loaded.labels), VOCMasks(m_all), "PASCAL VOC 2012 val"
    elif name == "synthetic":  # offline: the project's multi-label CNN on the synthetic set
        from ..data.synthetic import make_synthetic

        if pool is None:
            pool = make_synthetic(n, seed=seed, split="test")
        sub = pool.subset(slice(0, n))
        loaded = load_model("synthetic-multilabel", profile=profile, device=str(device))
        model, norm, model_name = loaded.model, None, "multi-label CNN"
        labels, desc = list(loaded.labels), "synthetic set"
        x_all, y_all, masks_all = sub.images, sub.labels, sub
    else:
        raise ValueError(f"unknown Table 3 data set {name!r}: {' | '.join(SEGMENTATION_CASES)}")
    logits = predict(model, x_all, norm)
    present = torch.sigmoid(logits) > 0.5
    exact = float((present.float() == y_all).all(1).float().mean())
    note = (
        f"{model_name} exact-match accuracy on {len(x_all)} images: {exact:.4f}; "
        f"{int(present.sum())} predicted labels explained"
    )
    return EvalCase(
        name,
        desc,
        model,
        model_name,
        norm,
        *_held(x_all, present, masks_all.label_mask),
        labels,
        note,
        image_index=torch.arange(len(x_all)),
        loaded=loaded,
        multilabel=True,
        exact_match=exact,
    )


def _ssl_case(
    name: str,
    profile: str,
    n: int,
    seed: int,
    device: torch.device,
    pool: Any,
    bank_size: int,
    bank_start: int,
) -> EvalCase:
    from ..methods.agf_selfsupervised import latent_bank, penultimate_split
    from ..models import load_model

    if name == "rotnet-synthetic":  # offline: the project's RotNet; the rotation is the SSL label
        from ..data.synthetic import make_synthetic
        from ..models.selfsup_miniatures import rotate

        test = pool if pool is not None else make_synthetic(n, seed=seed, split="test")
        loaded = load_model("synthetic-rotnet", profile=profile, device=str(device))
        rot = loaded.model
        g = torch.Generator().manual_seed(seed)
        train = make_synthetic(bank_size, seed=seed, split="train")
        k_bank = torch.randint(0, 4, (len(train),), generator=g)
        k_eval = torch.randint(0, 4, (len(test),), generator=g)
        x = rotate(test.images, k_eval)[:n]
        fg = rotate(test.foreground[:, None].float(), k_eval)[:n, 0].long()
        embed, _ = penultimate_split(rot)
        acc = float((predict(rot, x).argmax(1) == k_eval[: len(x)]).float().mean())
        bank_images = rotate(train.images, k_bank)
        note = f"rotation accuracy on {len(x)} rotated synthetic test images: {acc:.4f}"
        return EvalCase(
            name,
            _SSL_DESC[name],
            rot,
            "RotNet",
            None,
            *_held(x, k_eval[: len(x)], fg),
            note=note,
            bank=latent_bank(embed, bank_images),
            bank_images=bank_images,
            loaded=loaded,
        )
    if name not in SSL_CASES:
        raise ValueError(f"unknown self-supervised case {name!r}: {' | '.join(SSL_CASES)}")
    # paper: the authors' checkpoints (ArtefactMissing names the fetch command)
    from ..data.segmentation_sets import load_imagenet_segmentation

    sm = load_model(_PAPER_SSL[name], profile=profile, device=str(device))
    norm = sm.normalize
    x, fg = load_imagenet_segmentation(n)
    embed, _ = penultimate_split(sm.model)
    reader = load_model("vgg19", profile=profile)  # its preprocessing reads the validation images
    bank = reference_bank(
        lambda z: embed(norm(z)),
        "imagenet-val",
        bank_start,
        bank_size,
        loaded=reader,
        seed=seed,
        device=device,
    )
    note = (
        f"{sm.model.head.out_features} classes (head {sm.info.get('head_index')}), {len(x)} "
        "ImageNet-Segmentation "
        f"images, bank {len(bank)}"
    )
    return EvalCase(
        name,
        _SSL_DESC[name],
        sm.model,
        _SSL_DESC[name],
        norm,
        *_held(x, None, fg),
        note=note,
        bank=bank,
        loaded=sm,
    )


def eval_case(
    name: str,
    profile: str = "offline",
    *,
    n: int,
    seed: int = 0,
    device: torch.device | str | None = None,
    model: str | None = None,
    pool: Any = None,
    bank_size: int = 1000,
    bank_start: int = 0,
) -> EvalCase:
    """The case ``name`` of notebook 02's protocols at ``profile`` (see the module docstring).

    ``n``: images (classification and SSL cases) or images from which the explained pairs are
    drawn (segmentation cases). ``model``: the classifier of a classification case (required) or
    of ``imagenet-seg`` / ``voc2012`` (default ``vgg19`` / ``vgg19-voc-multilabel``). ``pool``: an
    already generated synthetic test set (:class:`~visxai.data.synthetic.SyntheticSet`) whose
    first ``n`` images are used, so that several cases share one set; ``bank_size`` /
    ``bank_start``: Algorithm 2's reference set of an SSL case (offline: the first ``bank_size``
    synthetic training images; paper: ImageNet validation images ``bank_start`` ..
    ``bank_start + bank_size``). The model is in eval mode on ``device``; images stay on the CPU.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    dev = _dev(device)
    if name in CLASSIFICATION_CASES:
        return _classification_case(name, profile, model, n, seed, dev)
    if name in SEGMENTATION_CASES:
        return _segmentation_case(name, profile, n, seed, dev, pool, model)
    if name in SSL_CASES:
        return _ssl_case(name, profile, n, seed, dev, pool, bank_size, bank_start)
    known = CLASSIFICATION_CASES + SEGMENTATION_CASES + SSL_CASES
    raise ValueError(f"unknown evaluation case {name!r}: {' | '.join(known)}")
