"""Seconds per image of Pixel Invariance (notebook 01; B augments) vs B batched forward passes.

    .venv/bin/python benchmarks/bench_pixel_invariance.py [--b 1000] [--device auto] [--threads 1]

Models: EfficientNet-Lite0 and ResNet-50 with random weights (224x224 input, 64x64 surrogate as in
the authors' notebook). Target: Pixel Invariance within 1.3x of the B forward passes.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from visxai.device import pick_device, seed_everything
from visxai.methods.pixel_invariance import PixelInvariance, extract_features, without_head


def _models() -> dict[str, nn.Module]:
    from efficientnet_lite_pytorch import EfficientNet
    from torchvision.models import resnet50

    eff = without_head(EfficientNet.from_name("efficientnet-lite0").eval(), "_fc")
    res = resnet50().eval()
    res.fc = nn.Identity()
    return {"efficientnet-lite0": eff, "resnet50": res}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--b", type=int, default=1000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(0)
    dev = pick_device(args.device)
    img = torch.rand(3, 224, 224)
    print(f"device {dev}, B={args.b}, batch {args.batch}")
    print(f"{'model':20s} {'forward B (s)':>14s} {'pixel inv (s)':>14s} {'ratio':>7s}  breakdown")
    for name, model in _models().items():
        model = model.to(dev).to(memory_format=torch.channels_last)
        x = torch.rand(args.b, 3, 224, 224, device=dev)
        extract_features(model, x[:8], batch_size=8, device=dev)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        extract_features(model, x, batch_size=args.batch, device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_fwd = time.perf_counter() - t
        del x
        pi = PixelInvariance(
            model,
            mean=(0.5,) * 3,
            std=(0.5,) * 3,
            n_augments=args.b,
            batch_size=args.batch,
            device=dev,
        )
        t = time.perf_counter()
        aug = pi.augments(img)
        t_aug = time.perf_counter() - t
        data = pi.prepare(img, aug)
        t_prep = time.perf_counter() - t
        pi.fit(data)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t_all = time.perf_counter() - t
        print(
            f"{name:20s} {t_fwd:14.2f} {t_all:14.2f} {t_all / t_fwd:7.2f}  "
            f"augment {t_aug:.2f}s, forward+flatten {t_prep - t_aug:.2f}s, "
            f"NMF+surrogate {t_all - t_prep:.2f}s"
        )


if __name__ == "__main__":
    main()
