"""Command line: ``python -m visxai reproduce | fetch | verify | list | scorecard | train``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .paths import figures_dir, repo_root

NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"


def _notebooks(only: list[str] | None) -> list[Path]:
    nb_dir = repo_root() / "notebooks"
    books = sorted(nb_dir.glob(NOTEBOOK_GLOB))
    if only:
        chosen = [b for b in books if any(b.stem.startswith(o) or o in b.stem for o in only)]
        missing = [o for o in only if not any(b.stem.startswith(o) or o in b.stem for b in books)]
        if missing:
            names = ", ".join(b.stem for b in books) or "none"
            raise SystemExit(f"reproduce: no notebook matches {missing}; available: {names}")
        books = chosen
    return books


def _parse_value(text: str) -> object:
    """A papermill parameter value from the command line: YAML scalars (1, 0.5, true, null, "x")."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _check_params(nb: Path, params: dict[str, object]) -> None:
    """Refuse parameters the notebook does not define, of another type or out of range: with the
    notebook's spec in :data:`visxai.checks.NOTEBOOK_PARAMETERS` (the one the notebook checks
    itself with), else with the types of its ``parameters`` cell's defaults."""
    from .checks import NOTEBOOK_PARAMETERS, InputError, Param, check_parameters

    spec = NOTEBOOK_PARAMETERS.get(nb.stem)
    if spec is None:
        import papermill as pm

        known = pm.inspect_notebook(str(nb))
        spec = {k: Param.like(_parse_value(str(v["default"]))) for k, v in known.items()}
    try:
        check_parameters(nb.stem, params, spec)
    except InputError as err:
        raise SystemExit(f"reproduce: {err}") from None


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Execute notebooks with papermill (headless) and collect the scorecard.

    Results go to ``runs/<timestamp>/`` (executed notebooks, ``figures/``, the scorecard) unless
    ``--canonical`` (``make reproduce``) or ``--inplace`` (``make notebooks``) asks for the
    committed ``figures/``; only the default offline run (no ``-p``, seed 0) may write there.
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from .scorecard import update_readme, write_markdown

    books = _notebooks(args.only)
    if not books:
        print("reproduce: no notebooks found under notebooks/", file=sys.stderr)
        return 1
    extra = {name: _parse_value(value) for name, value in (args.param or [])}
    for nb in books:
        _check_params(nb, extra)  # before any kernel starts or model loads
    canonical = args.canonical or args.inplace
    default_run = args.profile == "offline" and args.seed == 0 and not extra
    if canonical and not default_run:
        raise SystemExit(
            "reproduce: figures/ and the committed notebooks hold the default offline run only; "
            "drop --canonical/--inplace to write this run under runs/"
        )
    run_dir = repo_root() / "runs" / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    fig_root = figures_dir() if canonical else run_dir / "figures"
    fig_root.mkdir(parents=True, exist_ok=True)
    old_figures = os.environ.get("VISXAI_FIGURES")
    if not canonical:
        os.environ["VISXAI_FIGURES"] = str(fig_root)  # the kernels inherit it
    params = {"profile": args.profile, "device": args.device, "seed": args.seed, **extra}
    failures: list[str] = []
    try:
        for i, nb in enumerate(books, 1):
            out = nb if args.inplace else run_dir / nb.name
            print(
                f"[{i}/{len(books)}] {nb.name} (profile={args.profile}, "
                f"device={args.device}) -> {out}",
                flush=True,
            )
            t0 = time.perf_counter()
            try:
                pm.execute_notebook(
                    str(nb),
                    str(out),
                    parameters=params,
                    cwd=str(nb.parent),
                    kernel_name=args.kernel,
                    progress_bar=not args.quiet,
                    log_output=False,
                    request_save_on_cell_execute=False,
                )
            except PapermillExecutionError as err:
                first = next((ln for ln in (err.source or "").splitlines() if ln.strip()), "")
                msg = (
                    f"{nb.name}: cell {err.cell_index} of the executed notebook (execution count "
                    f"{err.exec_count}, starting `{first[:80]}`) raised {err.ename}: {err.evalue}"
                )
                print("FAILED " + msg, file=sys.stderr, flush=True)
                failures.append(msg)
                continue
            print(f"    done in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        if not canonical:
            if old_figures is None:
                os.environ.pop("VISXAI_FIGURES", None)
            else:
                os.environ["VISXAI_FIGURES"] = old_figures
    md = write_markdown(fig_root)
    print(f"scorecard: {md}")
    readme = repo_root() / "README.md"
    if canonical and not args.only and not failures and readme.exists():
        update_readme(readme)
    if failures:
        print("reproduce failed in:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


def cmd_scorecard(args: argparse.Namespace) -> int:
    from .scorecard import compare, update_readme, write_markdown

    if args.compare:
        problems = compare(args.compare)
        for p in problems:
            print(f"scorecard: {p}", file=sys.stderr)
        print(
            f"scorecard: {args.compare} vs committed figures/: "
            f"{'match' if not problems else f'{len(problems)} problem(s)'}"
        )
        return 1 if problems else 0
    path = write_markdown()
    if args.readme:
        update_readme(repo_root() / "README.md")
    print(path.read_text() if args.print else path)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .data import manifest

    return manifest.cli_list(args)


def cmd_fetch(args: argparse.Namespace) -> int:
    from .data import manifest

    return manifest.cli_fetch(args)


def cmd_verify(args: argparse.Namespace) -> int:
    from .data import manifest

    return manifest.cli_verify(args)


TRAINABLE = ("vgg19-voc-multilabel",)


def cmd_train(args: argparse.Namespace) -> int:
    """Train a paper-profile model once (cached by its config hash); see
    visxai.models.voc_multilabel."""
    from .data import ArtefactMissing
    from .models import voc_multilabel as vml

    overrides = {
        k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size)) if v is not None
    }
    cfg = vml.recipe_config(sbd=args.sbd_root is not None, **overrides)
    try:
        _, path, meta = vml.train_voc_multilabel(
            cfg,
            root=args.root,
            sbd_root=args.sbd_root,
            device=args.device,
            num_workers=args.workers,
            commit=args.commit,
            progress=not args.quiet,
        )
    except ArtefactMissing as err:
        print(f"train: {err}", file=sys.stderr)
        return 2
    print(f"{args.name}: {path}")
    print(f"metrics: {meta.get('metrics', {})}")
    if overrides:
        print(
            "non-default settings: load_model() looks for the default recipe; load this one with "
            "visxai.models.voc_multilabel.load_voc_multilabel("
            f"recipe_config(sbd={cfg['sbd']}, **{overrides}))"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m visxai", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser(
        "reproduce",
        help="execute the notebooks headless (papermill); results under runs/<timestamp>/",
        description="Execute notebooks with papermill. Results (executed notebooks, figures, "
        "scorecard) go to runs/<timestamp>/; --canonical writes the committed figures/ and README "
        "table instead "
        "(the default offline run only: `make reproduce`).",
    )
    r.add_argument(
        "--profile",
        choices=["offline", "paper"],
        default="offline",
        help="offline: substitute models and data, CPU minutes; paper: the papers' artefacts",
    )
    r.add_argument("--only", nargs="*", help="notebook stems or prefixes, e.g. 01 04_fill")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    r.add_argument("--seed", type=int, default=0, help="the notebooks' seed parameter")
    r.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a notebook parameter (repeatable), e.g. -p mask_ratio 0.5; checked against "
        "each notebook's parameters cell before anything runs",
    )
    r.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    r.add_argument(
        "--canonical",
        action="store_true",
        help="write figures/ and the README results table (default offline run only)",
    )
    r.add_argument(
        "--inplace",
        action="store_true",
        help="write outputs into notebooks/ and figures/ (to commit them for nbval)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_reproduce)

    s = sub.add_parser(
        "scorecard", help="collect figures/*/scorecard.csv into figures/SCORECARD.md"
    )
    s.add_argument("--print", action="store_true", help="print the table instead of its path")
    s.add_argument(
        "--readme", action="store_true", help="also refresh the results table in README.md"
    )
    s.add_argument(
        "--compare",
        metavar="RUN_FIGURES",
        help="check a run's scorecards (e.g. a test run's VISXAI_FIGURES) against the committed "
        "ones: same verdicts, values inside the committed CIs",
    )
    s.set_defaults(func=cmd_scorecard)

    ls = sub.add_parser("list", help="list the data manifests and whether each is in the cache")
    ls.set_defaults(func=cmd_list)

    f = sub.add_parser("fetch", help="download, verify and cache artefacts")
    f.add_argument("names", nargs="*", help="artefact names (see list)")
    f.add_argument(
        "--offline-set", action="store_true", help="everything the offline profile needs"
    )
    f.add_argument("--force", action="store_true", help="fetch again even if cached and valid")
    f.set_defaults(func=cmd_fetch)

    t = sub.add_parser(
        "train", help="train a paper-profile model once (AGF Table 3b: vgg19-voc-multilabel)"
    )
    t.add_argument("name", choices=TRAINABLE)
    t.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override the recipe (40); changes the checkpoint name",
    )
    t.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="override the recipe (32); changes the checkpoint name",
    )
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    t.add_argument(
        "--root",
        default=None,
        help="folder holding VOCdevkit/VOC2012 (default: the voc2012 artefact)",
    )
    t.add_argument(
        "--sbd-root",
        default=None,
        help="SBD benchmark_RELEASE/dataset: train on VOC+SBD (train_aug)",
    )
    t.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default min(8, CPUs))"
    )
    t.add_argument(
        "--commit", action="store_true", help="also copy the checkpoint into checkpoints/"
    )
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    v = sub.add_parser("verify", help="check cached artefacts against their sha256")
    v.add_argument("names", nargs="*")
    v.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    args = build_parser().parse_args(argv)
    from .data.manifest import CacheReadOnly, ManifestError

    try:
        return int(args.func(args) or 0)
    except (ManifestError, CacheReadOnly) as err:  # one line naming the file / folder, no traceback
        print(f"visxai {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
