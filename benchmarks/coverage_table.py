"""The README's "AGF coverage" table: model x method, supported / refused, CPU seconds per image.

Every torchvision classification family of issue 19, plus MNASNet and GoogLeNet (random weights,
``torchvision.models.NAME(weights=None)``, nothing downloaded), EfficientNet-Lite0 (the zoo's
offline weights) and a ViT-B/16 (refused), explained with AGF, RAP, CLRP, SGLRP and LRP
through ``visxai.methods.explain`` on one random 224 x 224 image, one thread. A cell is the
CPU time of one call (``time.process_time``: the work done, not the wait for a core on a
shared machine), after one untimed forward pass; for a "refused" model a line under the table
names the first unsupported operation from the ``UnsupportedLayerError`` message. The whole run
takes about five minutes on one core.

    .venv/bin/python benchmarks/coverage_table.py [--models resnet18,vit_b_16] [--size 224]
        [--methods agf,rap,clrp,sglrp,lrp] [--out table.md]
"""

from __future__ import annotations

import argparse
import platform
import re
import time

import torch
import torchvision

from visxai.errors import UnsupportedLayerError
from visxai.methods import explain

MODELS = (
    "resnet18",
    "resnet34",
    "resnet50",
    "vgg16_bn",
    "vgg19",
    "densenet121",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "regnet_y_400mf",
    "shufflenet_v2_x1_0",
    "convnext_tiny",
    "mnasnet1_0",
    "googlenet",
    "efficientnet-lite0",
    "vit_b_16",
)
METHODS = ("agf", "rap", "clrp", "sglrp", "lrp")


def build(name: str) -> torch.nn.Module:
    """Random-weight torchvision model (seed 0), or a zoo model for a name with a dash."""
    torch.manual_seed(0)
    if "-" in name:
        from visxai.models import load_model

        return load_model(name).model.eval()
    return getattr(torchvision.models, name)(weights=None).eval()


def refusal(message: str) -> str:
    """A short form of an ``UnsupportedLayerError`` message: the operation and where."""
    m = re.search(r"input of '([^']*)' was computed by .*? modules: (.*?) \(", message)
    if m:
        return f"{m.group(2)}, before {m.group(1)}"
    return message.split(";")[0][:60].replace("|", "/")


def cell(model: torch.nn.Module, x: torch.Tensor, method: str, notes: set[str]) -> str:
    c0 = time.process_time()
    try:
        a = explain(model, x, 1, method=method)
    except UnsupportedLayerError as e:
        notes.add(refusal(str(e)))
        return "refused"
    seconds = time.process_time() - c0
    if not bool(torch.isfinite(a).all()):
        return f"non-finite ({seconds:.2f} s)"
    return f"{seconds:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="also write the table to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    lines = [
        "| model | " + " | ".join(methods) + " |",
        "|---|" + "---:|" * len(methods),
    ]
    notes = []
    for name in args.models.split(","):
        model = build(name)
        x = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            model(x)  # warm-up
        why: set[str] = set()
        row = [cell(model, x, m, why) for m in methods]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
        notes += [
            f"{name} is refused at the first unsupported operation: {w}." for w in sorted(why)
        ]
        print(lines[-1], flush=True)
        del model
    caption = (
        f"CPU seconds per image (one call, one thread, {args.size} x {args.size}, random "
        f"weights; torch {torch.__version__}, {platform.processor() or platform.machine()})"
    )
    table = "\n".join(lines + [""] + notes)
    print(f"\n{caption}\n\n{table}")
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"{caption}\n\n{table}\n")


if __name__ == "__main__":
    main()
