"""Seconds per image for AGF beside one forward + one input-gradient backward pass.

Random-weight torchvision VGG-19 and ResNet-50 at 224x224 on the CPU, parameters frozen, for
each (batch, memory format) configuration; the two are timed back-to-back (interleaved, best
of ``--repeats``), so the ratio holds even while the machine is shared. Times are the process's
CPU time (one thread: the work done, not the wait for a core on a loaded machine) and, in a
second table, wall-clock time. Target (issue 4): AGF at most 3x the forward+backward pass, and
faster than the authors' implementation (their code needs CUDA, so it was not rerun here; the
issue quotes about 2.2 s per image for VGG-19 on this CPU).

    .venv/bin/python benchmarks/bench_agf.py [--configs 1:contiguous,8:channels_last]
        [--models vgg19,resnet50] [--repeats 2] [--threads 1] [--no-weight-cache]
    .venv/bin/python benchmarks/bench_agf.py --families   # one model per covered family

``--families`` (issue 19) times one model of every torchvision family AGF covers (batch 1,
contiguous): the ratio AGF / (one forward + one backward) per family, a printed table.
Measured here (CPU time, one thread, 224 px): 2.8 (VGG-16-BN), 2.8 (ResNet-50), 3.3
(DenseNet-121), 4.1 (MobileNetV2), 4.0 (MobileNetV3-L), 3.6 (EfficientNet-B0), 3.5
(EfficientNetV2-S), 3.7 (RegNetY-400MF), 4.4 (ShuffleNetV2), 3.2 (ConvNeXt-T): the light
depthwise networks pay relatively more for AGF's per-layer steps.
``--models`` takes any ``torchvision.models`` builder name.

Note: on this shared 2-core machine two OpenMP threads under contention can be ~60x slower than
one; the default is one thread. Measured here when the machine was idle: VGG-19 fwd+bwd is
221 ms/img at batch 8 channels_last.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torchvision

from visxai.methods.agf import agf, set_weight_cache

#: one model per family that AGF covers (issue 19), for ``--families``
FAMILIES = (
    "vgg16_bn",
    "resnet50",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "regnet_y_400mf",
    "shufflenet_v2_x1_0",
    "convnext_tiny",
)
AUTHORS_VGG19_S_PER_IMG = 2.2  # issue 4: the authors' implementation on this CPU (not rerun)


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One forward and one backward pass to the input (parameters frozen)."""
    xi = x.detach().clone().requires_grad_(True)
    out = model(xi)
    torch.autograd.grad(out[:, 0].sum(), xi)


def interleaved(
    fns: dict[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[float, float]]:
    """Best (cpu, wall) seconds per function, the functions run in turn after one warm-up."""
    for fn in fns.values():
        fn()
    best = {k: (float("inf"), float("inf")) for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            c, w = time.process_time() - c0, time.perf_counter() - w0
            best[k] = (min(best[k][0], c), min(best[k][1], w))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--configs",
        default="1:contiguous,8:channels_last",
        help="comma-separated batch:memory_format (contiguous | channels_last)",
    )
    ap.add_argument("--models", default="vgg19,resnet50")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--no-weight-cache", action="store_true", help="recompute |W| on every call")
    ap.add_argument("--families", action="store_true", help="one model per covered family, batch 1")
    args = ap.parse_args()
    if args.families:
        args.models, args.configs = ",".join(FAMILIES), "1:contiguous"
    torch.set_num_threads(args.threads)
    set_weight_cache(not args.no_weight_cache)
    rows = []
    for name in args.models.split(","):
        for cfg in args.configs.split(","):
            batch_s, fmt = cfg.split(":")
            batch = int(batch_s)
            torch.manual_seed(0)
            model = getattr(torchvision.models, name)(weights=None).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            x = torch.randn(batch, 3, args.size, args.size)
            if fmt == "channels_last":
                model = model.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)
            elif fmt != "contiguous":
                raise ValueError(f"unknown memory format {fmt!r}")
            best = interleaved(
                {"pass": lambda m=model, x=x: fwd_bwd(m, x), "agf": lambda m=model, x=x: agf(m, x)},
                args.repeats,
            )
            rows.append((name, batch, fmt, best["pass"], best["agf"]))
            del model
    print(
        f"AGF benchmark: CPU, {args.threads} thread(s), {args.size}x{args.size}, random weights, "
        f"weight cache {'off' if args.no_weight_cache else 'on'}, best of {args.repeats} "
        "(interleaved with the pass)"
    )
    for label, i in (("CPU time", 0), ("wall-clock time", 1)):
        print(f"\n{label}:")
        print(
            f"{'model':<18} {'batch':>5} {'memory format':<14} {'fwd+bwd s/img':>13} "
            f"{'AGF s/img':>10} {'AGF / fwd+bwd':>13}"
        )
        for name, batch, fmt, tp, ta in rows:
            print(
                f"{name:<18} {batch:>5} {fmt:<14} {tp[i] / batch:>13.3f} {ta[i] / batch:>10.3f} "
                f"{ta[i] / tp[i]:>13.2f}"
            )
    print(
        f"\nauthors' implementation (issue 4): ~{AUTHORS_VGG19_S_PER_IMG} s/img for VGG-19 on this "
        "CPU (their code needs CUDA, so it was not rerun here)"
    )


if __name__ == "__main__":
    main()
