"""Is notebook 01's offline B enough? Its B check repeated on several seeds (issue #13)

Notebook 01 runs Pixel Invariance offline with fewer augments than the paper's B = 1000 and
checks the smaller B on one seed (:func:`visxai.evaluation.pixel_invariance.augment_check`).
This script repeats that check for several smaller B and seeds, on the same six Fig. 2 photos
and the four offline SSL models: per seed, every model is explained at each B (the first B
augments of the B = 1000 run: they are drawn in sequence from the seed) and scored on the same
transformations and random maps; :func:`~visxai.evaluation.pixel_invariance.compare_augments`
then gives the Pearson r of the heatmaps and the verdict of the paper's claim per metric and of
"the heatmap beats a random map" per model and metric at both B.

Prints one row per (seed, B): median and minimum Pearson r, the claim verdicts identical to
B = 1000's, all verdicts identical, the verdicts that reverse (holds <-> fails), and the wall
time of the explanation at that B.

    VISXAI_THREADS=1 .venv/bin/python benchmarks/augment_check_seeds.py \\
        [--b 128,256] [--full 1000] [--seeds 0,1,2] [--workers 2]

About 3 minutes per seed on 2 cores (B = 1000 about 40 s of it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from visxai.device import configure_threads
from visxai.evaluation import pixel_invariance as pinv
from visxai.methods.pixel_invariance import PixelInvariance


def explain(
    explainer: PixelInvariance, case: pinv.InvarianceCase, b: int, seed: int, workers: int
) -> tuple[pd.DataFrame, dict, float]:
    """Table I rows and heatmaps of the Fig. 2 photos at ``b`` augments and ``seed``."""
    images = {n: case.images[n] for n in case.shown}
    t0 = time.perf_counter()
    frame, maps = pinv.invariance_table(
        explainer.replace(n_augments=b, seed=seed), case.models, images, seeds=(seed,),
        n_transforms=10, keep_seeds=(seed,), progress=False, step=case.eval_step,
        randomised_images=(), workers=workers,
    )  # fmt: skip
    return frame, maps, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--b", default="128,256", help="the smaller B, comma-separated")
    ap.add_argument("--full", type=int, default=1000, help="the reference B (the paper's)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    configure_threads()
    case = pinv.invariance_case("offline", device="cpu")
    explainer = PixelInvariance(
        *case.models["SimSiam"],
        alpha=2.0,
        lam=0.2,
        n_components=1,
        schedule="converge",
        erase_value=case.erase_value,
        n_augments=case.n_augments,
        surrogate_size=case.surrogate_size,
        device="cpu",
    )  # the notebook's parameters cell
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        full, full_maps, t_full = explain(explainer, case, args.full, seed, args.workers)
        for b in (int(x) for x in args.b.split(",")):
            small, small_maps, t = explain(explainer, case, b, seed, args.workers)
            check = pinv.compare_augments(
                small, small_maps, full, full_maps, list(case.models), list(case.shown), seed, b,
                args.full,
            )  # fmt: skip
            r = np.array(list(check.pearson.values()))
            claim = {k: v for k, v in check.verdicts.items() if k.startswith("claim")}
            rows.append({
                "seed": seed, "B": b, "median r": f"{np.median(r):.2f}",
                "min r": f"{r.min():.2f}",
                "claim identical": f"{sum(a == c for a, c in claim.values())}/{len(claim)}",
                "all identical": f"{sum(a == c for a, c in check.verdicts.values())}"
                                 f"/{len(check.verdicts)}",
                "reversed": len(check.reversed), "wall s": f"{t:.0f}",
                f"wall s at {args.full}": f"{t_full:.0f}",
            })  # fmt: skip
            moved = [f"{k}: {a} | {c}" for k, (a, c) in check.verdicts.items() if a != c]
            print(
                f"seed {seed}, B={b} vs {args.full}: " + ("; ".join(moved) or "no verdict moved"),
                flush=True,
            )
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
