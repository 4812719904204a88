"""Every test starts from the same random state, so unseeded draws cannot make a test flaky; and
torch uses VISXAI_THREADS threads (default 1): `make unit` runs two test processes on the shared
2-core machine, where spin-waiting OpenMP threads are many times slower (measured: the CNN-family
tests take 16 s with one thread, 75 s with torch's default)."""

import os

import pytest
import torch

from visxai.device import keep_freed_memory, seed_everything

torch.set_num_threads(int(os.environ.get("VISXAI_THREADS", "1")))
keep_freed_memory()  # page faults of freed buffers: see visxai.device.keep_freed_memory


@pytest.fixture(autouse=True)
def _seeded():
    seed_everything(0, deterministic=False)
    yield
