"""Batched vs one-at-a-time transformation invariant optimisation (notebook 03 / TIO, Algorithm 1).

Every start image (gray levels 0, 10, ..., 250, 255 by default) runs Algorithm 1 for the
soccer-ball class. "batched" optimises all of them in one call (each image keeps its own stopping
state); "one-at-a-time" calls the optimiser once per image. Throughput is counted in image-passes
per second (one forward+backward of one image = one pass: its gradient steps plus one test per
round). The last line reports how far the two modes' outputs differ: with the default fixed
chunks every pass runs on chunks of batch_size images in both modes, so it should be 0 (without
them batching changes the float summation order, and trajectories that cross q_target at a
different step end in different images).

    .venv/bin/python benchmarks/bench_tio.py  # EfficientNet-Lite0, 96 px, 4 rotations, 1 thread
    .venv/bin/python benchmarks/bench_tio.py --size 224 --rotations 36 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch

from visxai.device import pick_device, seed_everything
from visxai.methods.tio import TransformationInvariantOptimizer, gray_images
from visxai.models import load_model


def run(opt: TransformationInvariantOptimizer, x0: torch.Tensor, target: int, batched: bool):
    if batched:
        t0 = time.perf_counter()
        res = opt.optimize(x0, target)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        return dt, res.images, int((res.steps + res.rounds).sum())
    outs, passes, t0 = [], 0, time.perf_counter()
    for i in range(len(x0)):
        r = opt.optimize(x0[i : i + 1], target)
        outs.append(r.images)
        passes += int((r.steps + r.rounds).sum())
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, torch.cat(outs), passes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument(
        "--pretrained", type=int, default=1, help="0: random weights (no artefact needed)"
    )
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--rotations", type=int, default=4)
    ap.add_argument("--levels", default="sweep", help="'sweep' = 0,10,...,250,255 or a comma list")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="1: robust on a shared CPU")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    seed_everything(0)
    dev = pick_device(args.device)
    lm = load_model(args.model, device=dev, pretrained=bool(args.pretrained))
    target = lm.labels.index("soccer ball")
    levels = (
        list(range(0, 251, 10)) + [255]
        if args.levels == "sweep"
        else [int(v) for v in args.levels.split(",")]
    )
    x0 = gray_images(levels, args.size)
    opt = TransformationInvariantOptimizer.for_model(
        lm,
        n_rotations=args.rotations,
        batch_size=args.batch_size,
        device=dev,
    )
    opt.optimize(x0[:2], target)  # warm-up (allocator, kernels)
    rows = []
    for mode in ("one-at-a-time", "batched"):
        dt, imgs, passes = run(opt, x0, target, batched=mode == "batched")
        rows.append((mode, dt, passes, passes / dt, imgs))
    diff = float((rows[0][4] - rows[1][4]).abs().max())
    print(
        f"model={args.model} size={args.size} images={len(levels)} rotations={args.rotations} "
        f"device={dev} threads={torch.get_num_threads()} batch_size={args.batch_size}"
    )
    print(f"{'mode':<15}{'seconds':>10}{'passes':>10}{'passes/s':>12}{'speed-up':>10}")
    for mode, dt, passes, rate, _ in rows:
        print(f"{mode:<15}{dt:>10.2f}{passes:>10d}{rate:>12.1f}{rate / rows[0][3]:>10.2f}x")
    print(f"max |batched - one-at-a-time| over all output pixels: {diff:.4g} (0..255 scale)")


if __name__ == "__main__":
    main()
