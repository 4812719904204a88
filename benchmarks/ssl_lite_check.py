"""Do the SSL-Lite models of notebook 01 beat their own randomised copies? (issue #13)

For each of the four offline SSL-Lite models (:mod:`visxai.models.ssl_lite`): the trained model,
the same model before continuation (ImageNet backbone, fresh heads: ``pretrained=False``) and
``controls.randomized_model`` of the trained one, on the 17 offline photos at 64 px:

* ``cos``: per photo, the mean cosine similarity between the photo's output (projection head)
  and the outputs of its B = 64 augments (``InvarianceAugment()``: the paper's augmentations,
  erased boxes black as Pixel Invariance draws them for a model that normalises inside);
* ``margin``: ``cos`` minus the photo's mean cosine to the other photos' augments (a model that
  maps every image to one direction has ``cos`` near 1 and ``margin`` near 0);
* ``retrieval``: per photo, the share of its K = 4 flipped + cropped views (a random crop of
  60 % of the area, resized back, mirrored) whose nearest photo by ``embed`` (cosine, among the
  17 originals) is the photo itself.

Mean over photos with a 95 % bootstrap CI (``visxai.stats.estimate``), and the paired
differences trained - randomised and trained - before (``paired_difference``). Then the SSL
loss at the start and end of training (from each checkpoint's metadata).

    VISXAI_THREADS=1 .venv/bin/python benchmarks/ssl_lite_check.py [--size 64] [--augments 64]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from visxai.controls import randomized_model
from visxai.data import list_photos
from visxai.models import training
from visxai.models.ssl_lite import LITE_CONFIGS, load_ssl_lite
from visxai.models.ssl_miniatures import photo_tensor
from visxai.stats import estimate, paired_difference
from visxai.transforms import InvarianceAugment


def views(images: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """``k`` mirrored random crops (60 % of the area) of each image, resized back:
    [k, N, 3, H, W]."""
    n, _, h, w = images.shape
    g = torch.Generator().manual_seed(seed)
    side = 0.6**0.5
    ch, cw = round(h * side), round(w * side)
    out = []
    for _ in range(k):
        i = torch.randint(h - ch + 1, (n,), generator=g)
        j = torch.randint(w - cw + 1, (n,), generator=g)
        crops = torch.stack([images[a, :, i[a] : i[a] + ch, j[a] : j[a] + cw] for a in range(n)])
        crops = F.interpolate(crops, size=(h, w), mode="bilinear", align_corners=False)
        out.append(crops.flip(-1).clamp(0, 1))
    return torch.stack(out)


@torch.no_grad()
def scores(model, images: torch.Tensor, augments: torch.Tensor, gallery: torch.Tensor):
    """Per photo: cos, margin, retrieval (see the module docstring)."""
    n, b = augments.shape[:2]
    z = F.normalize(model(images), dim=1)  # [N, D]
    za = torch.cat([model(augments[p]) for p in range(n)])
    za = F.normalize(za, dim=1).view(n, b, -1)  # [N, B, D]
    cross = torch.einsum("pd,qbd->pqb", z, za).mean(2)  # [N photos, N photos' augments]
    own = cross.diagonal()
    others = (cross.sum(1) - own) / (n - 1)
    e = F.normalize(model.embed(images), dim=1)
    k = gallery.shape[0]
    eg = F.normalize(model.embed(gallery.flatten(0, 1)), dim=1).view(k, n, -1)
    nearest = torch.einsum("knd,md->knm", eg, e).argmax(2)  # [K, N]: nearest original per view
    hits = (nearest == torch.arange(n)).float().mean(0)
    return own.numpy(), (own - others).numpy(), hits.numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--augments", type=int, default=64)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--models", nargs="*", default=list(LITE_CONFIGS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    photos = list_photos()
    images = torch.stack([photo_tensor(p, args.size) for p in photos])
    aug = InvarianceAugment()
    augments = torch.stack(
        [
            aug.apply(images[k], aug.sample(args.augments, args.size, args.size, seed=k))
            for k in range(len(photos))
        ]
    )
    gallery = views(images, args.views, seed=0)
    print(
        f"{len(photos)} photos at {args.size} px, B = {args.augments} augments, "
        f"{args.views} flipped crops per photo; mean over photos [95% CI]\n"
    )
    head = f"{'model':14s} {'weights':11s} {'cos':>22s} {'margin':>22s} {'retrieval':>22s}"
    print(head)
    print("-" * len(head))
    diffs, losses = [], []
    for name in args.models:
        trained = load_ssl_lite(name, progress=False)
        with training.seeded(int(LITE_CONFIGS[name]["seed"])):  # the heads training began with
            before = load_ssl_lite(name, pretrained=False)
        rand = randomized_model(trained, seed=1)
        per = {}
        for label, m in (("trained", trained), ("before", before), ("randomised", rand)):
            per[label] = scores(m.eval(), images, augments, gallery)
            cells = " ".join(f"{estimate(v).fmt():>22s}" for v in per[label])
            print(f"{name:14s} {label:11s} {cells}")
        for other in ("randomised", "before"):
            cells = " ".join(
                f"{paired_difference(a, b).fmt():>22s}" for a, b in zip(per["trained"], per[other])
            )
            diffs.append(f"{name:14s} {'- ' + other:11s} {cells}")
        path = training.find_checkpoint(f"ssl-lite-{name}", LITE_CONFIGS[name])
        meta = training.checkpoint_metadata(path).get("metrics", {}) if path else {}
        losses.append((name, meta))
    print("\npaired differences, trained minus ...")
    print("\n".join(diffs))
    print("\nSSL loss: fixed batch (eval mode) start -> end; training steps first 10 -> last 10")
    nan = float("nan")
    for name, m in losses:
        fixed = f"{m.get('fixed_loss_start', nan):8.4f} -> {m.get('fixed_loss_end', nan):8.4f}"
        steps = f"{m.get('first_loss', nan):8.4f} -> {m.get('final_loss', nan):8.4f}"
        print(f"{name:14s} {fixed}; {steps}; {m.get('train_seconds', '?')} s")


if __name__ == "__main__":
    main()
