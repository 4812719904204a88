"""AGF Table 2 on real ImageNet weights at the issue's scale: 51 images, all 12 methods (issue #15)

Notebook 02 runs Table 2 on EfficientNet-Lite0 with the 17 offline photos (originals) and the
methods of registry cost "fast", because its offline run has to fit in 10 CPU minutes. This
script runs the same code (:func:`visxai.evaluation.agf_study.photo_runs`) at the scale issue #15
asks for: every photo in three views (original, mirrored, 70 % centre crop: 51 images), all 12 of
the paper's methods (the 8 "fast" ones on the 51 images; SmoothGrad, Gradient SHAP, Meaningful
Perturbation, FullGrad and Captum's IG, the "slow" ones, on the 17 originals), random saliency
with seeds 0/1/2 and the methods on a randomised model on ``--control-n`` originals.

The unit of every CI is the photo (three views of one scene are not independent): a fast
method's per-photo value is its mean over the views. Method settings are the notebook's offline
ones (IG 16 steps, SmoothGrad / Gradient SHAP 8 samples, Meaningful Perturbation 40 iterations).

Prints the AUC table with "AGF - method" (paired bootstrap over photos), the claim's verdict per
seed, the randomised-model control and the seconds per image of each method.

    VISXAI_THREADS=1 .venv/bin/python benchmarks/agf_photos_table2.py \\
        [--views original,flipped,crop] [--control-n 17] [--seed 0]

About 10 CPU minutes on one Xeon core (544 s with the notebook's control of 2 originals).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from visxai.device import configure_threads, pick_device, seed_everything
from visxai.evaluation import agf_study as study
from visxai.evaluation import agf_tables as at
from visxai.methods import method_names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", default="original,flipped,crop")
    ap.add_argument("--control-n", type=int, default=17, help="originals for the control")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    configure_threads()
    seed_everything(args.seed)
    order = method_names()[1:]  # the paper's methods in its order, as notebook 02
    s1 = study.part1_settings(
        "offline", ig_steps=100, smoothgrad_samples=50, gshap_samples=20, mp_iterations=300
    )  # the offline branch lowers these to the notebook's offline values
    p2 = study.part2_settings("offline", order, s1["fig2_photos"])
    p2.update(
        t2_photo_views=args.views.split(","),
        t2_photo_methods=order,  # Captum's IG is an extra row, outside the claim (at.EXTRA_ROWS)
        t2_photo_control_n=args.control_n,
    )
    dev = pick_device("cpu")
    run = at.AGFRun(params=dict(s1["method_kw"]), device=dev)
    run.batch = p2["batch"]
    t0 = time.perf_counter()
    ph = study.photo_runs(run, p2, "offline", args.seed, dev)
    wall = time.perf_counter() - t0
    print(
        f"{ph.loaded.name}, {len(ph.images)} images of {ph.n_photos} photos "
        f"({', '.join(p2['t2_photo_views'])}), predicted class (label = the unperturbed "
        f"prediction); {wall:.0f} s"
    )
    print(ph.table.to_string(index=False))
    print()
    for s in run.seeds:
        v, comps = ph.verdicts[s]
        ahead = [
            f"{run.label(m)} {c.diff.fmt()}"
            for m, c in run.claim_comparisons(comps).items()
            if c.verdict == "fails"
        ]
        print(f"seed {s}: AGF first {v}" + (f"; ahead of AGF: {'; '.join(ahead)}" if ahead else ""))
    print(f"randomised model (n={ph.control_n}): AGF first {ph.control[0]}")
    print()
    tt = pd.Series({k[-1]: v for k, v in run.timings.items()}).sort_values(ascending=False)
    print("seconds per image:")
    print(tt.round(2).to_string())


if __name__ == "__main__":
    main()
