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
