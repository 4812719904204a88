"""Seconds per image for AGF beside one forward + one input-gradient backward pass.

Random-weight torchvision VGG-19 and ResNet-50 at 224x224 on the CPU, parameters frozen.
Target (issue 4): AGF at most 3x the forward+backward pass, and faster than the authors'
implementation (about 2.2 s per image for VGG-19 on this CPU).

    .venv/bin/python benchmarks/bench_agf.py [--batch 1] [--repeats 3] [--threads 1]

Note: on this shared 2-core machine, two OpenMP threads under contention can be ~50x slower
than one; the default is one thread.
"""

from __future__ import annotations

import argparse
import time

import torch
import torchvision

from visxai.methods.agf import agf


def _best(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor) -> None:
    xi = x.clone().requires_grad_(True)
    out = model(xi)
    (g,) = torch.autograd.grad(out[:, 0].sum(), xi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    rows = []
    for name, build in [("vgg19", torchvision.models.vgg19), ("resnet50", torchvision.models.resnet50)]:
        model = build(weights=None).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        t_pass = _best(lambda: fwd_bwd(model, x), args.repeats) / args.batch
        t_agf = _best(lambda: agf(model, x), args.repeats) / args.batch
        rows.append((name, t_pass, t_agf, t_agf / t_pass))
    print(f"AGF benchmark: CPU, {args.threads} thread(s), batch {args.batch}, "
          f"{args.size}x{args.size}, random weights, best of {args.repeats}")
    print(f"{'model':<10} {'fwd+bwd s/img':>14} {'AGF s/img':>10} {'AGF / pass':>11}")
    for name, tp, ta, ratio in rows:
        print(f"{name:<10} {tp:>14.3f} {ta:>10.3f} {ratio:>11.2f}")
    print("authors' code (issue 4): ~2.2 s/img for VGG-19 on this CPU")


if __name__ == "__main__":
    main()
