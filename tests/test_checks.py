"""visxai.checks: one validator, messages that say what was expected and what was found."""

import numpy as np
import pytest
import torch

from visxai.checks import InputError, check_images


def test_accepts_and_returns_valid_input():
    x = torch.rand(2, 3, 4, 4)
    assert check_images(x, channels=3, value_range=(0, 1)) is x


@pytest.mark.parametrize(
    ("bad", "pattern"),
    [
        (np.zeros((2, 3, 4, 4)), r"float tensor \[B, 3, H, W\].*got ndarray"),
        (torch.zeros(3, 4, 4), r"got shape \(3, 4, 4\)"),
        (
            torch.zeros(2, 1, 4, 4),
            r"must have 3 \(RGB\) channel\(s\) at dim 1 \(\[B, 3, H, W\]\), "
            r"got shape \(2, 1, 4, 4\) with 1",
        ),
        (
            torch.zeros(2, 3, 4, 4, dtype=torch.uint8),
            r"floating point.*uint8 \(uint8 images: x.float\(\) / 255\)",
        ),
        (
            torch.tensor([[[[float("nan"), 0.5], [float("inf"), 0.2]]] * 3]),
            r"has 6 non-finite value\(s\) \(3 NaN, 3 infinite\) of 12",
        ),
        (torch.full((2, 3, 4, 4), 2.0), r"must lie in \[0, 1\], got values in \[2, 2\]; do this"),
    ],
)
def test_rejects_with_a_message_that_names_the_problem(bad, pattern):
    with pytest.raises(InputError, match=pattern):
        check_images(bad, channels=3, value_range=(0, 1), hint="do this")


def test_input_error_is_both_value_and_type_error():
    assert issubclass(InputError, ValueError) and issubclass(InputError, TypeError)


def test_dtype_is_named_when_required():
    with pytest.raises(
        InputError, match=r"must be torch.float32 \(the model's dtype\), got torch.float64"
    ):
        check_images(torch.zeros(1, 3, 2, 2, dtype=torch.float64), dtype=torch.float32)
    assert check_images(torch.full((1, 3, 2, 2), float("nan")), finite=False).isnan().all()


# ----------------------------------------------------------------------------- notebook parameters
import ast  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

from visxai.checks import (  # noqa: E402
    NOTEBOOK_PARAMETERS,
    check_notebook_parameters,
    check_parameters,
)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _cells(stem: str) -> tuple[str, str]:
    """The source of a notebook's papermill ``parameters`` cell and of its check cell."""
    cells = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())["cells"]
    params = next(c for c in cells if "parameters" in c["metadata"].get("tags", []))
    check = next(c for c in cells if c.get("id") == "check-parameters")
    return "".join(params["source"]), "".join(check["source"])


def _defaults(stem: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(_cells(stem)[0], namespace)
    del namespace["__builtins__"]
    return namespace


@pytest.mark.parametrize("stem", sorted(NOTEBOOK_PARAMETERS))
def test_the_spec_names_each_notebooks_parameters_and_accepts_their_defaults(stem):
    params = _defaults(stem)
    assert list(params) == list(NOTEBOOK_PARAMETERS[stem])  # same names, same order
    check_parameters(stem, params)
    assert {p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")} == set(NOTEBOOK_PARAMETERS)


@pytest.mark.parametrize(
    ("stem", "params", "pattern"),
    [
        ("04_fill_in_the_blanks", {"mask_ratio": 1.5}, r"mask_ratio is float in \(0, 1\), got 1.5"),
        ("04_fill_in_the_blanks", {"mask_ratio": 0}, r"mask_ratio is float in \(0, 1\), got 0"),
        ("04_fill_in_the_blanks", {"patch_size": 2.5}, r"patch_size is int >= 1, got 2.5"),
        (
            "04_fill_in_the_blanks",
            {"binarize": "mean"},
            r"'otsu', 'none', None or a float in \[0, 1\), got 'mean'",
        ),
        ("04_fill_in_the_blanks", {"k_masks": True}, r"k_masks is int >= 1, got True"),
        ("01_pixel_invariance", {"profile": "fast"}, r"one of 'offline', 'paper', got 'fast'"),
        ("01_pixel_invariance", {"seed": -1}, r"seed is int >= 0"),
        ("02_attribution_guided_factorization", {"device": "gpu"}, r"device is str matching"),
        ("03_transformation_invariant_optimization", {"gray_levels": [0, 300]}, r"list of int"),
        ("03_transformation_invariant_optimization", {"q_target": float("nan")}, r"q_target"),
        (
            "04_fill_in_the_blanks",
            {"mask_ratoi": 0.5},
            r"has no parameter \['mask_ratoi'\]; its parameters: profile \(one of 'offline', "
            r"'paper'\), .*mask_ratio \(float in \(0, 1\)\).*did you mean 'mask_ratio'\?",
        ),
        ("05_nope", {}, r"no parameter spec for notebook '05_nope'"),
    ],
)
def test_bad_parameters_are_named(stem, params, pattern):
    with pytest.raises(InputError, match=pattern):
        check_parameters(stem, params)


def test_accepted_parameter_values():
    check_parameters("04_fill_in_the_blanks", {"mask_ratio": 0.5, "binarize": None, "gamma": 2})
    check_parameters("04_fill_in_the_blanks", {"binarize": 0.3, "device": "cuda:1"})
    check_parameters("03_transformation_invariant_optimization", {"angle": 10, "n_rotations": 0})


def test_notebook_namespace_check_ignores_imports_and_finds_misspellings():
    ns = {**_defaults("04_fill_in_the_blanks"), "__name__": "__main__", "_i1": "x", "In": []}
    ns["np"], ns["check_notebook_parameters"] = np, check_notebook_parameters
    check_notebook_parameters("04_fill_in_the_blanks", ns)  # modules, functions, _names: fine
    with pytest.raises(InputError, match=r"no parameter \['mask_ratoi'\]; its parameters:"):
        check_notebook_parameters("04_fill_in_the_blanks", {**ns, "mask_ratoi": 0.5})
    with pytest.raises(InputError, match=r"parameter\(s\) \['mask_ratio'\] are not defined"):
        check_notebook_parameters(
            "04_fill_in_the_blanks", {k: v for k, v in ns.items() if k != "mask_ratio"}
        )


@pytest.mark.parametrize(
    ("injected", "pattern"),
    [
        ("", None),
        ('profile = "paper"\nseed = 3\nmask_ratio = 0.5', None),
        ("mask_ratio = 1.5", r"mask_ratio is float in \(0, 1\), got 1.5"),
        ("mask_ratoi = 0.5", r"no parameter \['mask_ratoi'\].*did you mean 'mask_ratio'"),
    ],
)
def test_notebook_04_checks_its_parameters_in_its_first_cells(injected, pattern):
    # the way papermill runs it: parameters cell, injected-parameters cell, then the check cell
    # (nothing imported or loaded yet: the check cell comes before the first import)
    params, check = _cells("04_fill_in_the_blanks")
    ast.parse(check)
    namespace: dict[str, object] = {}
    exec(params, namespace)
    exec("# Parameters\n" + injected, namespace)
    if pattern is None:
        exec(check, namespace)
    else:
        with pytest.raises(InputError, match=pattern):
            exec(check, namespace)


@pytest.mark.parametrize("stem", sorted(NOTEBOOK_PARAMETERS))
def test_each_notebook_checks_right_after_its_parameters(stem):
    cells = json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    tags = [c["metadata"].get("tags", []) for c in code]
    at = next(i for i, c in enumerate(code) if c.get("id") == "check-parameters")
    assert "parameters" in tags[0] and all("injected-parameters" in t for t in tags[1:at])
    assert f'check_notebook_parameters("{stem}", globals())' in "".join(code[at]["source"])
    assert code[at]["outputs"] == []


def test_check_model_input_names_the_models_channels_and_dtype():
    from visxai.checks import check_model_input

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Flatten())
    x = torch.rand(1, 3, 4, 4)
    assert check_model_input(model, x) is x
    with pytest.raises(InputError, match=r"must be torch.float32 \(the model's dtype\), got "):
        check_model_input(model, x.double())
    with pytest.raises(InputError, match=r"must have 3 \(RGB\) channel\(s\) at dim 1.*with 4"):
        check_model_input(model, torch.rand(1, 4, 4, 4))
    with pytest.raises(InputError, match=r"dtype torch.uint8 \(uint8 images"):
        check_model_input(model, torch.zeros(1, 3, 4, 4, dtype=torch.uint8))
    check_model_input(model.double(), x.double())


def test_in_a_kernel_only_the_injected_cells_names_count():
    # IPython's input history holds papermill's injected cell: later globals (a re-run of the
    # check cell in a session) are not mistaken for parameters
    ns = {**_defaults("04_fill_in_the_blanks"), "STEM": "04_fill_in_the_blanks", "T0": 1.0}
    ns["In"] = ["", "profile = 'offline'", '# Parameters\nprofile = "offline"\nseed = 0\n']
    check_notebook_parameters("04_fill_in_the_blanks", ns)
    ns["In"].append('# Parameters\nprofile = "offline"\nmask_ratoi = 0.5\n')
    ns["mask_ratoi"] = 0.5
    with pytest.raises(InputError, match=r"no parameter \['mask_ratoi'\]"):
        check_notebook_parameters("04_fill_in_the_blanks", ns)
