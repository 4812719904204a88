"""visxai.device: device choice, seeding, batched map with out-of-memory halving."""

import os

import numpy as np
import pytest
import torch
from torch import nn

from visxai.device import (
    autocast,
    batched_map,
    freeze,
    frozen,
    iter_chunks,
    pick_device,
    seed_everything,
    to_channels_last,
)


def test_pick_device_auto_and_cpu():
    assert pick_device("cpu").type == "cpu"
    auto = pick_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)


def test_pick_device_rejects_missing_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device("cuda")


def test_pick_device_rejects_nonsense():
    with pytest.raises(ValueError, match="unknown device"):
        pick_device("abacus")


def test_seed_everything_repeats_streams():
    seed_everything(3)
    a = (torch.rand(5), np.random.rand(5))
    seed_everything(3)
    b = (torch.rand(5), np.random.rand(5))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    seed_everything(4)
    assert not torch.equal(a[0], torch.rand(5))


def test_iter_chunks_cover():
    slices = list(iter_chunks(10, 4))
    assert [(s.start, s.stop) for s in slices] == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError):
        list(iter_chunks(3, 0))


def test_batched_map_matches_unbatched_and_structures():
    x = torch.randn(37, 3)
    y = torch.randn(37)
    out = batched_map(lambda a, b: (a.sum(1) + b, {"sq": a**2}), x, y, batch_size=8)
    assert torch.allclose(out[0], x.sum(1) + y)
    assert torch.allclose(out[1]["sq"], x**2)


def test_batched_map_halves_on_oom():
    sizes = []

    def fn(a):
        sizes.append(len(a))
        if len(a) > 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return a * 2

    x = torch.arange(20.0)
    out = batched_map(fn, x, batch_size=16)
    assert torch.equal(out, x * 2)
    assert sizes[:3] == [16, 8, 4] and max(sizes[3:]) <= 4


def test_batched_map_reraises_other_errors_and_checks_lengths():
    with pytest.raises(RuntimeError, match="boom"):
        batched_map(lambda a: (_ for _ in ()).throw(RuntimeError("boom")), torch.zeros(3))
    with pytest.raises(ValueError, match="different lengths"):
        batched_map(lambda a, b: a, torch.zeros(3), torch.zeros(4))


def test_freeze_and_frozen_restore():
    m = nn.Linear(2, 2)
    with frozen(m):
        assert not any(p.requires_grad for p in m.parameters())
    assert all(p.requires_grad for p in m.parameters())
    freeze(m)
    assert not any(p.requires_grad for p in m.parameters())


def test_channels_last_keeps_outputs():
    m = nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    ref = m(x)
    m2, x2 = to_channels_last(m, x)
    assert x2.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(m2(x2), ref, atol=1e-5)


def test_autocast_is_noop_on_cpu():
    with autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_configure_threads_reads_env(monkeypatch):
    from visxai.device import configure_threads

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("VISXAI_THREADS", "1")
        assert configure_threads() == 1
        assert configure_threads(2) == 2
        with pytest.raises(ValueError):
            configure_threads(0)
    finally:
        torch.set_num_threads(before)


def test_batched_map_on_empty_inputs_keeps_the_output_structure():
    out = batched_map(
        lambda x, y: {"s": x * 2, "t": y}, torch.empty(0, 3), torch.empty(0, dtype=torch.long)
    )
    assert out["s"].shape == (0, 3) and out["t"].dtype == torch.long


def test_cpu_workers_choice(monkeypatch):
    from visxai.device import cpu_workers

    assert cpu_workers(3) == 3
    with pytest.raises(ValueError, match="workers must be >= 1"):
        cpu_workers(0)
    assert cpu_workers(None, "cuda") == 1  # a GPU: one process
    monkeypatch.setenv("VISXAI_WORKERS", "2")
    assert cpu_workers() == 2
    monkeypatch.setenv("VISXAI_WORKERS", "two")
    with pytest.raises(ValueError, match="VISXAI_WORKERS"):
        cpu_workers()
    monkeypatch.delenv("VISXAI_WORKERS")
    n = cpu_workers()
    assert n >= 1 and n == max(1, len(os.sched_getaffinity(0)) // torch.get_num_threads())


def _warn_twice(v: int) -> int:
    import warnings

    warnings.warn(f"shown {v}", RuntimeWarning)
    warnings.warn(f"hidden {v}", RuntimeWarning)
    return v


def test_process_map_applies_and_reissues_warnings():
    import warnings

    from visxai.device import process_map

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message="hidden")  # the parent's filter holds there
        assert process_map(_warn_twice, [1, 2], 2) == [1, 2]
    assert sorted(str(w.message) for w in caught) == ["shown 1", "shown 2"]


def _square_and_report(v: int) -> int:
    from visxai.device import worker_progress

    bar = worker_progress()
    assert bar is not None  # in a worker process
    bar.update(v)
    return v * v


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def update(self, k: int) -> None:
        self.n += k


def test_process_map_order_progress_and_errors():
    from visxai.device import process_map, worker_progress

    bar = _Counter()
    assert process_map(_square_and_report, [1, 2, 3, 4], 2, progress=bar) == [1, 4, 9, 16]
    assert bar.n == 10  # every worker's updates reached the parent's bar
    assert worker_progress() is None  # not in a worker
    assert process_map(abs, [-1, -2], 1) == [1, 2]  # one worker: here
    with pytest.raises(ValueError, match="workers must be >= 1"):
        process_map(abs, [1], 0)
    with pytest.raises(TypeError):  # a worker's exception is raised here
        process_map(abs, ["a", "b"], 2)


def test_keep_freed_memory_is_on_under_glibc_and_can_be_turned_off() -> None:
    import subprocess
    import sys

    code = "from visxai.device import keep_freed_memory as k; print(k(), k())"
    env = {k: v for k, v in os.environ.items() if k != "VISXAI_KEEP_FREED_MEMORY"}
    on = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    off = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "VISXAI_KEEP_FREED_MEMORY": "0"},
        capture_output=True,
        text=True,
    )
    import platform

    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert on.stdout.split() == ["True", "True"], on.stderr
    assert off.stdout.split() == ["False", "False"], off.stderr


def test_deal_and_undeal_round_trip() -> None:
    from visxai.device import deal, undeal

    parts = deal(7, 3)
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    outs = [[f"v{j}" for j in p] for p in parts]
    assert undeal(parts, outs) == [f"v{j}" for j in range(7)]
    assert deal(2, 4) == [[0], [1], [], []]
    with pytest.raises(ValueError, match="came back"):
        undeal(parts, [["a"], ["b"], ["c"]])
    with pytest.raises(ValueError, match="workers"):
        deal(3, 0)
