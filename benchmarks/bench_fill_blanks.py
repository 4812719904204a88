"""Throughput of the E[Delta x] estimate of Fill in the blanks (section 4.1).

Counts masked forward+backward passes per second (one pass = one masked image through the model
and back to its input) of ``FillInTheBlanks.expected_update`` for the small project models, over a
sweep of batch sizes and the two memory layouts, and prints the table plus the best batch size.
Random weights (speed does not depend on them). Target: >= 2,500 passes/s for the three-layer CNN
on a 2-core CPU. The machine may be shared: the load average is printed with the table.

    .venv/bin/python benchmarks/bench_fill_blanks.py [--device auto] [--masks 4096] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

from visxai.device import pick_device
from visxai.methods.fill_blanks import FillInTheBlanks
from visxai.models.small_cnns import SmallCNN3, SmallResNet


def passes_per_second(
    model: torch.nn.Module,
    device: torch.device,
    batch: int,
    masks: int,
    repeats: int,
    channels_last: bool,
) -> float:
    fb = FillInTheBlanks(model, device=device, batch_size=batch, channels_last=channels_last)
    x = torch.rand(1, 1, 28, 28)
    x[..., :4, :] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fb.replace(min_correct=batch, max_masks=batch).expected_update(x, 0)  # warm-up
    best = 0.0
    for r in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        # N* > masks cannot be reached within max_masks=masks: exactly `masks` passes are timed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fb.replace(min_correct=masks, max_masks=masks, seed=r).expected_update(x, 0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, res.n_sampled / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--masks", type=int, default=4096, help="masked images per measurement")
    ap.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="64,256,512,1024,2048")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    batches = [int(b) for b in args.batches.split(",")]
    load = os.getloadavg()
    print(
        f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
        f"masks/measurement={args.masks} "
        f"load average (1/5/15 min)={load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} "
        f"cpus={os.cpu_count()}"
    )
    print(f"{'model':<14} {'layout':<14} {'batch':>6} {'passes/s':>10}")
    torch.manual_seed(0)
    models = {"cnn3": SmallCNN3(), "resnet5": SmallResNet()}
    best: dict[str, tuple[float, int, str]] = {}
    for name, model in models.items():
        for layout in ("contiguous", "channels_last"):
            m = model.to(memory_format=torch.contiguous_format)
            for b in batches:
                pps = passes_per_second(
                    m, device, b, args.masks, args.repeats, layout == "channels_last"
                )
                print(f"{name:<14} {layout:<14} {b:>6} {pps:>10.0f}", flush=True)
                if pps > best.get(name, (0.0, 0, ""))[0]:
                    best[name] = (pps, b, layout)
    print()
    for name, (pps, b, layout) in best.items():
        note = "  (target >= 2500/s)" if name == "cnn3" else ""
        print(f"best {name}: {pps:.0f} passes/s at batch {b}, {layout}{note}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
