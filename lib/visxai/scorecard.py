"""Paper value vs reproduced value, one row per table cell or claim.

Each notebook builds a :class:`Scorecard`, adds rows computed in the same run, and saves them
to ``figures/<notebook stem>/scorecard.csv``. ``python -m visxai scorecard`` (and the end of
``reproduce``) collects every notebook's rows into ``figures/SCORECARD.md``.

Paper values live only in the ``paper_value`` column; ``reproduced`` is always a number the
run computed (or ``None`` with a reason in ``setting`` when it could not be run here).

A row is ``paper, item, metric, paper_value, reproduced, ci95, n, seeds, setting, verdict``.
A numeric ``reproduced`` must come as a :class:`visxai.stats.Estimate`, which supplies ``ci95``
(written ``[lo, hi]``), ``n`` (the units averaged) and ``seeds``; the verdict is one word of
:data:`visxai.stats.VERDICTS` (the rules are in :mod:`visxai.stats`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .paths import figures_dir
from .stats import VERDICTS, Estimate, ci_decimals

__all__ = [
    "ScorecardRow",
    "Scorecard",
    "collect",
    "write_markdown",
    "update_readme",
    "stability_table",
    "compare",
]

README_START = "<!-- scorecard:start -->"
README_END = "<!-- scorecard:end -->"

COLUMNS = [
    "paper",
    "item",
    "metric",
    "paper_value",
    "reproduced",
    "ci95",
    "n",
    "seeds",
    "setting",
    "verdict",
]


@dataclass
class ScorecardRow:
    paper: str
    item: str
    metric: str
    paper_value: str
    reproduced: str
    ci95: str
    n: str
    seeds: str
    setting: str
    verdict: str


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "not run"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.{digits}f}"
    return str(value)


class Scorecard:
    """Rows of one notebook (``paper`` is the notebook stem, e.g. ``04_fill_in_the_blanks``)."""

    def __init__(self, paper: str) -> None:
        self.paper = paper
        self.rows: list[ScorecardRow] = []

    def add(
        self,
        item: str,
        metric: str,
        paper_value: object,
        reproduced: Estimate | str | None,
        setting: str,
        verdict: str,
        digits: int = 3,
    ) -> ScorecardRow:
        """Add one row (a row with the same item and metric is replaced).

        ``reproduced`` is an :class:`Estimate` for a number (its CI, n and seeds fill their
        columns), a short text for a non-numeric result (e.g. a ranking), or None (not run).
        ``verdict`` must be one of :data:`visxai.stats.VERDICTS`.
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        if isinstance(reproduced, bool) or isinstance(
            reproduced, (int, float, np.floating, np.integer)
        ):
            raise TypeError(
                f"{item} / {metric}: a numeric result needs its CI; pass "
                "visxai.stats.estimate(...) "
                f"(an Estimate), not the bare number {reproduced!r}"
            )
        if isinstance(reproduced, Estimate):
            d = ci_decimals(reproduced.lo, reproduced.hi) + (reproduced.hi > reproduced.lo)
            rep, ci, n, seeds = (
                f"{reproduced.value:.{d}f}",
                reproduced.ci95,
                str(reproduced.n),
                str(reproduced.seeds),
            )
        elif reproduced is None:
            rep, ci, n, seeds = "not run", "", "", ""
        else:
            rep, ci, n, seeds = str(reproduced), "", "", ""
        row = ScorecardRow(
            self.paper, item, metric, _fmt(paper_value, digits), rep, ci, n, seeds, setting, verdict
        )
        self.rows = [r for r in self.rows if (r.item, r.metric) != (item, metric)]
        self.rows.append(row)
        return row

    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path else figures_dir(self.paper) / "scorecard.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            for row in self.rows:
                writer.writerow(asdict(row))
        tmp.replace(path)
        return path

    def to_markdown(self) -> str:
        return _markdown(self.rows)

    def _repr_markdown_(self) -> str:  # pretty in Jupyter
        return self.to_markdown()


def _markdown(rows: list[ScorecardRow]) -> str:
    header = (
        "| paper | item | metric | paper value | reproduced | 95% CI | n | seeds "
        "| profile and setting | verdict |"
    )
    lines = [header, "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [getattr(r, f.name).replace("|", "/").replace("\n", " ") for f in fields(r)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def collect(root: str | Path | None = None) -> list[ScorecardRow]:
    """Every ``figures/*/scorecard.csv`` row, notebooks in name order."""
    root = Path(root) if root else figures_dir()
    rows: list[ScorecardRow] = []
    for csv_path in sorted(root.glob("*/scorecard.csv")):
        with csv_path.open(newline="") as fh:
            for rec in csv.DictReader(fh):
                rows.append(ScorecardRow(**{c: rec.get(c, "") for c in COLUMNS}))
    return rows


def write_markdown(root: str | Path | None = None) -> Path:
    """Write ``figures/SCORECARD.md`` from every notebook's scorecard.csv."""
    root = Path(root) if root else figures_dir()
    rows = collect(root)
    text = [
        "# Scorecard: paper values vs values reproduced by this repository",
        "",
        "Generated by `python -m visxai scorecard` from `figures/*/scorecard.csv`; "
        "every reproduced",
        "value was computed by the notebook run that wrote it. "
        "'paper value' is quoted from the paper.",
        "",
        _markdown(rows) if rows else "_No notebook has written scorecard rows yet._",
        "",
    ]
    out = root / "SCORECARD.md"
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(text))
    tmp.replace(out)
    return out


def update_readme(readme: str | Path, root: str | Path | None = None) -> bool:
    """Replace the README's results table (between the scorecard markers) by the current rows.

    Returns False (and changes nothing) if the README has no markers.
    """
    readme = Path(readme)
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    rows = collect(root)
    table = _markdown(rows) if rows else "_Run `make reproduce` to fill this table._"
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(f"{head}{README_START}\n{table}\n{README_END}{tail}")
    return True


def stability_table(verdicts: dict[str, Sequence[str] | str], seeds: Sequence[int] = (0, 1, 2)):
    """The closing-cell table: each claim's verdict per seed and whether every seed agrees.

    ``verdicts`` maps a claim to its per-seed verdicts (in ``seeds`` order) or, for a
    deterministic claim (fixed model, deterministic method: the seed does not enter), to one
    verdict, shown for every seed. A list of one verdict is a claim run for the first seed only
    (e.g. an expensive estimate whose own convergence is checked): the other seeds show "-" and
    "seed enters" says "first seed only". The final verdict is
    :func:`visxai.stats.verdict_over_seeds` of the seeds that ran.
    """
    import pandas as pd

    from .stats import verdict_over_seeds

    records = []
    for claim, v in verdicts.items():
        per_seed = [v] * len(seeds) if isinstance(v, str) else list(v)
        first_only = not isinstance(v, str) and len(per_seed) == 1 < len(seeds)
        if len(per_seed) != len(seeds) and not first_only:
            raise ValueError(f"{claim!r}: {len(per_seed)} verdicts for {len(seeds)} seeds")
        shown = per_seed + ["-"] * (len(seeds) - len(per_seed))
        rec = {"claim": claim}
        rec.update({f"seed {s}": x for s, x in zip(seeds, shown)})
        rec["verdict"] = verdict_over_seeds(per_seed)
        rec["seed enters"] = (
            "no" if isinstance(v, str) else "first seed only" if first_only else "yes"
        )
        records.append(rec)
    return pd.DataFrame(records).set_index("claim")


def _interval(ci95: str) -> tuple[float, float] | None:
    text = ci95.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    try:
        lo, hi = (float(v) for v in text[1:-1].split(","))
    except ValueError:
        return None
    return lo, hi


def compare(run: str | Path, reference: str | Path | None = None) -> list[str]:
    """Problems of a run's scorecards against the committed ones (an empty list: they match).

    For each notebook that wrote ``<run>/<stem>/scorecard.csv``, every committed row must be
    there with the same verdict (the contract), and a numeric ``reproduced`` value must lie
    inside the committed 95% CI widened by twice its width on each side: a protocol that drifted
    moves a value further. (A chaotic protocol run on another CPU is a fresh draw: its mean falls
    outside the committed CI itself about one time in six, and further when few replicates make
    the CI too narrow: notebook 03's Fig. 1 ratio moved 0.75 -> 1.01 against [0.66, 0.83] under
    emulated AVX2 numerics.) A committed CI of zero width (every resampled unit on one value of
    a grid, e.g. notebook 03's distance of an argmin to 127: [97, 97] here, 67 under emulated
    AVX2 numerics, [67, 97] for another seed set) carries no spread: for such a row only the
    verdict is compared. Every numeric row must carry a CI, ``n`` and ``seeds``.
    """
    reference = Path(reference) if reference else repo_root_figures()
    problems: list[str] = []
    run_rows = collect(run)
    by_paper: dict[str, dict[tuple[str, str], ScorecardRow]] = {}
    for r in run_rows:
        by_paper.setdefault(r.paper, {})[(r.item, r.metric)] = r
    for paper, rows in sorted(by_paper.items()):
        ref_csv = Path(reference) / paper / "scorecard.csv"
        if not ref_csv.is_file():
            problems.append(f"{paper}: no committed scorecard at {ref_csv}")
            continue
        ref = {(r.item, r.metric): r for r in collect(reference) if r.paper == paper}
        for key, want in ref.items():
            got = rows.get(key)
            where = f"{paper} / {key[0]} / {key[1]}"
            if got is None:
                problems.append(f"{where}: row missing from the run")
                continue
            if got.verdict != want.verdict:
                problems.append(f"{where}: verdict {got.verdict!r}, committed {want.verdict!r}")
            ci = _interval(want.ci95)
            try:
                value = float(got.reproduced)
            except ValueError:
                value = None
            if value is not None and ci is not None:
                width = ci[1] - ci[0]
                # a zero-width committed CI (every resampled unit on one grid value) carries no
                # spread to widen: only its verdict (above) is compared
                inside = width == 0 or ci[0] - 2 * width <= value <= ci[1] + 2 * width
                if not inside:
                    problems.append(
                        f"{where}: reproduced {got.reproduced} outside the committed CI "
                        f"{want.ci95} "
                        "widened by twice its width"
                    )
        for key, got in rows.items():
            try:
                float(got.reproduced)
            except ValueError:
                continue
            if _interval(got.ci95) is None or not got.n or not got.seeds:
                problems.append(
                    f"{paper} / {key[0]} / {key[1]}: numeric row without ci95, n or seeds"
                )
            if key not in ref:
                problems.append(
                    f"{paper} / {key[0]} / {key[1]}: row not in the committed scorecard"
                )
    return problems


def repo_root_figures() -> Path:
    """The committed ``figures/`` folder of the repository (ignores ``VISXAI_FIGURES``)."""
    from .paths import repo_root

    return repo_root() / "figures"
