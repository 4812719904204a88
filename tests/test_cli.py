"""The runner: papermill execution, failure reporting, scorecard collection."""

import nbformat
import pytest

from visxai.cli import main


def _notebook(path, cells, extra_params=""):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'profile = "offline"\ndevice = "auto"\nseed = 0' + extra_params
    )
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
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
    assert main(["reproduce", "--quiet", "--device", "cpu", "--canonical"]) == 0
    md = (fake_repo / "figures" / "SCORECARD.md").read_text()
    assert (
        "| 01_ok | Table 1 | acc | 0.500 | 0.500 | [0.500, 0.500] | 4 | 1 | offline: toy | agrees |"
        in md
    )
    runs = list((fake_repo / "runs").glob("*/01_ok.ipynb"))
    assert runs, "the executed notebook is written into a run folder"


def test_reproduce_names_failing_notebook_and_cell(fake_repo, capsys):
    _notebook(
        fake_repo / "notebooks" / "02_bad.ipynb", ["x = 1", "raise ValueError('planted failure')"]
    )
    assert main(["reproduce", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert (
        "02_bad.ipynb" in err
        and "raise ValueError('planted failure')" in err
        and "planted failure" in err
    )


def test_reproduce_unknown_notebook(fake_repo):
    with pytest.raises(SystemExit, match="no notebook matches"):
        main(["reproduce", "--only", "77"])


def _scorecard_notebook(path, extra_params=""):
    _notebook(
        path,
        [
            "from visxai.scorecard import Scorecard\n"
            "from visxai.stats import estimate\n"
            "sc = Scorecard(STEM)\n"
            "sc.add('ratio', 'value', None, estimate([mask_ratio] * 3), f'{profile}', 'observed')\n"
            "sc.save()"
        ],
        extra_params=f"\nmask_ratio = 0.25\nSTEM = '{path.stem}'" + extra_params,
    )


def test_a_default_run_writes_runs_not_figures(fake_repo):
    _scorecard_notebook(fake_repo / "notebooks" / "01_ok.ipynb")
    assert main(["reproduce", "--quiet", "--device", "cpu"]) == 0
    assert not (fake_repo / "figures").exists()
    run = next((fake_repo / "runs").iterdir())
    assert (run / "01_ok.ipynb").is_file()
    assert "| 01_ok | ratio | value |" in (run / "figures" / "SCORECARD.md").read_text()
    assert (run / "figures" / "01_ok" / "scorecard.csv").is_file()


def test_param_passes_through_papermill_and_never_writes_figures(fake_repo, capsys):
    _scorecard_notebook(fake_repo / "notebooks" / "01_ok.ipynb")
    assert main(["reproduce", "--quiet", "--device", "cpu", "-p", "mask_ratio", "0.5"]) == 0
    run = next((fake_repo / "runs").iterdir())
    assert "| 0.500 | [0.500, 0.500] |" in (run / "figures" / "SCORECARD.md").read_text()
    assert not (fake_repo / "figures").exists()
    with pytest.raises(SystemExit, match="default offline run only"):
        main(["reproduce", "--quiet", "--canonical", "-p", "mask_ratio", "0.5"])
    with pytest.raises(SystemExit, match="default offline run only"):
        main(["reproduce", "--quiet", "--inplace", "--seed", "1"])
    assert not (fake_repo / "figures").exists()


def test_param_is_checked_before_anything_runs(fake_repo):
    _scorecard_notebook(fake_repo / "notebooks" / "01_ok.ipynb")
    with pytest.raises(
        SystemExit, match=r"no parameter \['mask_ration'\]; its parameters: .*mask_ratio"
    ):
        main(["reproduce", "--quiet", "-p", "mask_ration", "0.5"])
    with pytest.raises(SystemExit, match="mask_ratio is float"):
        main(["reproduce", "--quiet", "-p", "mask_ratio", "big"])
    assert not (fake_repo / "runs").exists()


def _real_first_cells(fake_repo, stem):
    """A notebook named ``stem`` in the fake repo with the real notebook's parameters cell and
    its parameter-check cell, then a cell that would load a model."""
    import json
    from pathlib import Path

    real = Path(__file__).resolve().parents[1] / "notebooks" / f"{stem}.ipynb"
    cells = json.loads(real.read_text())["cells"]
    params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    check = next(c for c in cells if c.get("id") == "check-parameters")
    nb = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell("".join(params["source"]))
    first.metadata["tags"] = ["parameters"]
    nb.cells = [
        first,
        nbformat.v4.new_code_cell("".join(check["source"])),
        nbformat.v4.new_code_cell("print('the models', 'would load here')"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = fake_repo / "notebooks" / f"{stem}.ipynb"
    nbformat.write(nb, path)
    return path


def test_param_out_of_range_is_refused_before_anything_runs(fake_repo):
    _real_first_cells(fake_repo, "04_fill_in_the_blanks")
    with pytest.raises(SystemExit, match=r"mask_ratio is float in \(0, 1\), got 1.5"):
        main(["reproduce", "--quiet", "-p", "mask_ratio", "1.5"])
    assert not (fake_repo / "runs").exists()


def test_the_notebooks_check_cell_catches_a_misspelt_papermill_parameter(fake_repo):
    # papermill itself only warns about an unknown parameter and injects it; the notebook's
    # check cell (after the injected-parameters cell, in a real kernel) refuses it
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    path = _real_first_cells(fake_repo, "04_fill_in_the_blanks")
    out = fake_repo / "out.ipynb"
    for params, pattern in [
        ({"mask_ratoi": 0.5}, r"no parameter \['mask_ratoi'\]; its parameters: profile"),
        ({"mask_ratio": 1.5}, r"mask_ratio is float in \(0, 1\), got 1.5"),
    ]:
        with pytest.raises(PapermillExecutionError, match=pattern):
            pm.execute_notebook(str(path), str(out), parameters=params, progress_bar=False)
        assert "the models would load here" not in out.read_text()
    pm.execute_notebook(str(path), str(out), parameters={"mask_ratio": 0.5}, progress_bar=False)
    assert "the models would load here" in out.read_text()
