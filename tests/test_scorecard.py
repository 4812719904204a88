"""visxai.scorecard: rows with CIs, the verdict vocabulary, collection into SCORECARD.md."""

import pytest

from visxai.scorecard import COLUMNS, Scorecard, collect, stability_table, write_markdown
from visxai.stats import Estimate


def _est(v, lo, hi, n=100, seeds=1):
    return Estimate(v, lo, hi, n, seeds)


def test_scorecard_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("VISXAI_FIGURES", str(tmp_path))
    sc = Scorecard("99_demo")
    sc.add(
        "Table 1 random",
        "accuracy",
        0.99,
        _est(0.9712, 0.96, 0.98),
        "offline: mnist-cnn3",
        "differs",
    )
    sc.add(
        "Table 1 random", "accuracy", 0.99, _est(0.9912, 0.985, 0.995), "offline", "agrees"
    )  # replaces
    sc.add("Fig. 4", "argmax gray", 60, None, "paper only", "not run")
    sc.save()
    rows = collect(tmp_path)
    assert [(r.item, r.reproduced, r.ci95, r.n, r.seeds) for r in rows] == [
        ("Table 1 random", "0.9912", "[0.985, 0.995]", "100", "1"),
        ("Fig. 4", "not run", "", "", ""),
    ]
    text = write_markdown(tmp_path).read_text()
    assert (
        "| 99_demo | Table 1 random | accuracy | 0.990 | 0.9912 | [0.985, 0.995] | 100 | 1 |"
        in text
    )
    assert "| paper | item | metric | paper value | reproduced | 95% CI | n | seeds |" in text
    assert COLUMNS[5:8] == ["ci95", "n", "seeds"]


def test_numeric_rows_need_a_ci_and_verdicts_a_known_word():
    sc = Scorecard("99_demo")
    with pytest.raises(TypeError, match="needs its CI"):
        sc.add("Table 1", "acc", 0.9, 0.8, "offline", "differs")
    with pytest.raises(ValueError, match="verdict must be one of"):
        sc.add("Table 1", "acc", 0.9, _est(0.8, 0.7, 0.9), "offline", "holds: AGF first")
    sc.add("ranking", "order", "AGF first", "Grad-CAM > AGF", "offline", "observed")  # text result


def test_update_readme_replaces_only_the_marked_table(tmp_path, monkeypatch):
    from visxai.scorecard import README_END, README_START, update_readme

    monkeypatch.setenv("VISXAI_FIGURES", str(tmp_path / "figures"))
    sc = Scorecard("99_demo")
    sc.add("Table 1", "acc", 0.9, _est(0.8, 0.75, 0.85), "offline", "differs")
    sc.save()
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold table\n{README_END}\noutro\n")
    assert update_readme(readme, tmp_path / "figures")
    text = readme.read_text()
    assert (
        "old table" not in text
        and "| 99_demo | Table 1 | acc | 0.900 | 0.800 | [0.75, 0.85] |" in text
    )
    assert text.startswith("intro\n") and text.endswith("outro\n")
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers")
    assert not update_readme(plain, tmp_path / "figures")


def test_stability_table_keeps_a_verdict_only_when_all_seeds_agree():
    t = stability_table(
        {
            "A > B": ["holds", "holds", "holds"],
            "C > D": ["holds", "fails", "holds"],
            "deterministic": "fails",
        }
    )
    assert list(t["verdict"]) == ["holds", "inconclusive", "fails"]
    assert list(t["seed enters"]) == ["yes", "yes", "no"]
    with pytest.raises(ValueError, match="2 verdicts for 3 seeds"):
        stability_table({"x": ["holds", "holds"]})
    first = stability_table({"E[dx] claim": ["fails"]})  # run for the first seed only
    assert list(first.loc["E[dx] claim"]) == ["fails", "-", "-", "fails", "first seed only"]


def test_compare_flags_moved_verdicts_values_outside_the_ci_and_missing_rows(tmp_path):
    from visxai.scorecard import compare

    def write(root, rows):
        sc = Scorecard("99_demo")
        for item, est, verdict in rows:
            sc.add(item, "m", 0.5, est, "s", verdict)
        return sc.save(root / "99_demo" / "scorecard.csv")

    ref, run = tmp_path / "ref", tmp_path / "run"
    write(
        ref,
        [
            ("a", _est(0.50, 0.45, 0.55), "agrees"),
            ("b", _est(0.1, 0.0, 0.2), "inconclusive"),
            ("c", "text", "observed"),
        ],
    )
    write(
        run,
        [
            ("a", _est(0.52, 0.47, 0.57), "agrees"),
            ("b", _est(0.1, 0.0, 0.2), "inconclusive"),
            ("c", "text", "observed"),
        ],
    )
    assert compare(run, ref) == []
    write(run, [("a", _est(0.76, 0.71, 0.81), "differs"), ("c", "text", "observed")])
    problems = compare(run, ref)
    assert any("verdict 'differs', committed 'agrees'" in p for p in problems)
    assert any("outside the committed CI" in p for p in problems)
    assert any("/ b / m: row missing" in p for p in problems)


def test_compare_checks_only_the_verdict_where_the_committed_ci_has_no_width(tmp_path):
    from visxai.scorecard import compare

    def write(root, est, verdict="holds"):
        sc = Scorecard("99_demo")
        sc.add("d", "distance to 127", "> 30", est, "s", verdict)
        return sc.save(root / "99_demo" / "scorecard.csv")

    ref, run = tmp_path / "ref", tmp_path / "run"
    write(ref, _est(97.0, 97.0, 97.0))  # every resampled unit on one grid value
    write(run, _est(67.0, 67.0, 67.0))  # another grid value, the same verdict
    assert compare(run, ref) == []
    write(run, _est(10.0, 10.0, 10.0), "fails")  # a moved verdict is still flagged
    assert any("verdict 'fails', committed 'holds'" in p for p in compare(run, ref))
    write(ref, _est(97.0, 96.0, 98.0))  # a committed CI with width: the value is checked
    write(run, _est(67.0, 67.0, 97.0))
    assert any("outside the committed CI" in p for p in compare(run, ref))


def test_committed_scorecards_use_the_vocabulary_and_carry_cis():
    """Every committed row (what `make reproduce` wrote) has a known verdict; numbers carry CIs."""
    from visxai.paths import repo_root
    from visxai.stats import VERDICTS

    rows = collect(repo_root() / "figures")
    assert rows, "figures/*/scorecard.csv are committed"
    for r in rows:
        assert r.verdict in VERDICTS, (r.paper, r.item, r.verdict)
        try:
            float(r.reproduced)
        except ValueError:
            continue
        assert r.ci95.startswith("[") and r.n and r.seeds, (r.paper, r.item, r.metric)
