"""Every test starts from the same random state, so unseeded draws cannot make a test flaky."""

import pytest

from visxai.device import seed_everything


@pytest.fixture(autouse=True)
def _seeded():
    seed_everything(0, deterministic=False)
    yield
