"""visxai.scorecard: rows, verdicts, collection into SCORECARD.md."""

from visxai.scorecard import Scorecard, collect, verdict_close, verdict_order, write_markdown


def test_verdicts():
    assert verdict_close(0.98, 0.99, 0.02) == "agrees"
    assert verdict_close(0.90, 0.99, 0.02) == "differs"
    assert verdict_close(None, 0.99, 0.02) == "not run"
    assert verdict_order(True, "AGF first").startswith("holds")
    assert verdict_order(False, "AGF first").startswith("fails")


def test_scorecard_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("VISXAI_FIGURES", str(tmp_path))
    sc = Scorecard("99_demo")
    sc.add("Table 1 random", "accuracy", 0.99, 0.9712, "offline: mnist-cnn3", "differs")
    sc.add("Table 1 random", "accuracy", 0.99, 0.9912, "offline: mnist-cnn3", "agrees")  # replaces
    sc.add("Fig. 4", "argmax gray", 60, None, "paper only", "not run")
    sc.save()
    rows = collect(tmp_path)
    assert [(r.item, r.reproduced) for r in rows] == [("Table 1 random", "0.991"), ("Fig. 4", "not run")]
    text = write_markdown(tmp_path).read_text()
    assert "| 99_demo | Table 1 random | accuracy | 0.990 | 0.991 |" in text
    assert "| paper | item | metric | paper value | reproduced |" in text


def test_update_readme_replaces_only_the_marked_table(tmp_path, monkeypatch):
    from visxai.scorecard import README_END, README_START, update_readme

    monkeypatch.setenv("VISXAI_FIGURES", str(tmp_path / "figures"))
    sc = Scorecard("99_demo")
    sc.add("Table 1", "acc", 0.9, 0.8, "offline", "differs")
    sc.save()
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold table\n{README_END}\noutro\n")
    assert update_readme(readme, tmp_path / "figures")
    text = readme.read_text()
    assert "old table" not in text and "| 99_demo | Table 1 | acc | 0.900 | 0.800 |" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers")
    assert not update_readme(plain, tmp_path / "figures")
