"""The runner: papermill execution, failure reporting, scorecard collection."""

import nbformat
import pytest

from visxai.cli import main


def _notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "offline"\ndevice = "auto"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture()
def fake_repo(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setenv("VISXAI_ROOT", str(tmp_path))
    monkeypatch.delenv("VISXAI_FIGURES", raising=False)
    return tmp_path


def test_reproduce_runs_and_collects_scorecard(fake_repo, capsys):
    _notebook(
        fake_repo / "notebooks" / "01_ok.ipynb",
        [
            "from visxai.scorecard import Scorecard\n"
            "from visxai.stats import estimate\n"
            "sc = Scorecard('01_ok')\n"
            "sc.add('Table 1', 'acc', 0.5, estimate([0.25 * 2] * 4), f'{profile}: toy', 'agrees')\n"
            "sc.save()"
        ],
    )
    assert main(["reproduce", "--quiet", "--device", "cpu"]) == 0
    md = (fake_repo / "figures" / "SCORECARD.md").read_text()
    assert "| 01_ok | Table 1 | acc | 0.500 | 0.500 | [0.500, 0.500] | 4 | 1 | offline: toy | agrees |" in md
    runs = list((fake_repo / "runs").glob("*/01_ok.ipynb"))
    assert runs, "the executed notebook is written into a run folder"


def test_reproduce_names_failing_notebook_and_cell(fake_repo, capsys):
    _notebook(fake_repo / "notebooks" / "02_bad.ipynb", ["x = 1", "raise ValueError('planted failure')"])
    assert main(["reproduce", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "02_bad.ipynb" in err and "raise ValueError('planted failure')" in err and "planted failure" in err


def test_reproduce_unknown_notebook(fake_repo):
    with pytest.raises(SystemExit, match="no notebook matches"):
        main(["reproduce", "--only", "77"])
