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
        (torch.zeros(2, 1, 4, 4), r"RGB float tensor \[B, 3, H, W\]"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "floating point.*uint8"),
        (torch.full((2, 3, 4, 4), 2.0), r"must lie in \[0, 1\], got values in \[2, 2\]; do this"),
    ],
)
def test_rejects_with_a_message_that_names_the_problem(bad, pattern):
    with pytest.raises(InputError, match=pattern):
        check_images(bad, channels=3, value_range=(0, 1), hint="do this")


def test_input_error_is_both_value_and_type_error():
    assert issubclass(InputError, ValueError) and issubclass(InputError, TypeError)
