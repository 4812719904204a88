"""Forward and input-gradient cost of each zoo model (ms per image), printed as a table.

    .venv/bin/python benchmarks/bench_models.py [--models efficientnet-lite0 mnist-cnn3 ...]
        [--batch 8] [--repeats 3] [--threads 2] [--device cpu]

Three layouts: contiguous weights (``load_model(..., channels_last=False)``), channels_last (what
``load_model`` gives on the CPU) and, forward only, the batch-norm-folded copy that notebook 01's
forward passes run (:func:`visxai.models.inference.inference_copy`).

Models that need an artefact use random weights (``pretrained=False``): the cost does not depend
on them.
Parameters are frozen, so the backward pass computes the gradient to the input only (as the
attribution methods do).
"""

from __future__ import annotations

import argparse
import time

import torch

from visxai.device import freeze, pick_device
from visxai.models import list_models, load_model
from visxai.models.inference import inference_copy


def _time(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    entries = list_models()
    names = args.models or list(entries)
    print(f"device={device} threads={args.threads} batch={args.batch}")
    print(
        "| model | params (M) | input | fwd contiguous | fwd channels_last | fwd folded "
        "| fwd+grad contiguous | fwd+grad channels_last |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for name in names:
        row = []
        for layout in ("contiguous", "channels_last"):
            lm = load_model(
                name,
                pretrained=entries[name].offline,
                device=str(device),
                channels_last=layout == "channels_last",
            )
            model = freeze(lm.model)
            x = torch.rand(args.batch, lm.in_channels, *lm.input_size, device=device)
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)

            def fwd(model=model, x=x):
                with torch.no_grad():
                    model(x)

            def fwd_bwd(model=model, x=x):
                xi = x.clone().requires_grad_(True)
                model(xi).max(1).values.sum().backward()

            row.append((_time(fwd, args.repeats, sync), _time(fwd_bwd, args.repeats, sync)))
        folded = inference_copy(model)
        t_fold = _time(lambda: fwd(folded, x), args.repeats, sync)
        ms = [t / args.batch * 1e3 for t in (row[0][0], row[1][0], t_fold, row[0][1], row[1][1])]
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        shape = "x".join(map(str, (lm.in_channels, *lm.input_size)))
        cells = " | ".join(f"{t:.2f}" for t in ms)
        print(f"| {name} | {n_params:.3f} | {shape} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
