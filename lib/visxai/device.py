"""Device utilities shared by every method: device choice, seeding, batched maps.

Methods call :func:`batched_map` instead of writing their own chunk loops, so that work is
batched on the GPU and CPU alike and a CUDA out-of-memory error halves the chunk instead of
failing the run. On a CPU, work that splits into independent parts (e.g. notebook 03's
optimisation jobs) runs in :func:`cpu_workers` processes with :func:`process_map`: one torch
thread per process uses every core without OpenMP's spin-waiting (see :func:`configure_threads`).

Written by hand: the progress relay of :func:`process_map` (a queue from the workers to one tqdm
bar); the processes are ``concurrent.futures.ProcessPoolExecutor``'s, started with ``spawn``
(safe inside Jupyter kernels and with OpenMP).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "pick_device",
    "seed_everything",
    "make_generator",
    "batched_map",
    "iter_chunks",
    "autocast",
    "to_channels_last",
    "frozen",
    "freeze",
    "configure_threads",
    "keep_freed_memory",
    "cpu_workers",
    "process_map",
    "deal",
    "undeal",
    "worker_progress",
]


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA if available, then MPS, else CPU; other strings are checked.

    Raises ``ValueError`` for a device that is asked for but not present (e.g. ``"cuda"`` on a
    machine without a GPU) rather than failing later inside a kernel.
    """
    if isinstance(device, torch.device):
        device = str(device)
    device = str(device).lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} was requested but CUDA is not available here; use 'auto' or 'cpu'"
        )
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from err


def configure_threads(num_threads: int | None = None) -> int:
    """Set torch's CPU thread count: ``num_threads``, else ``$VISXAI_THREADS``, else the default.

    On a small shared CPU, OpenMP threads that outnumber free cores spin-wait on each other (seen
    here: two threads 20-60x slower than one while other processes ran), so parallel runners such
    as ``make test`` (nbval with two workers) export ``VISXAI_THREADS=1``. Returns the count in use.
    """
    if num_threads is None:
        env = os.environ.get("VISXAI_THREADS", "").strip()
        num_threads = int(env) if env else None
    if num_threads is not None:
        if num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        torch.set_num_threads(int(num_threads))
    keep_freed_memory()
    return torch.get_num_threads()


_MALLOC_KEPT = False


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the system (Linux only;
    ``$VISXAI_KEEP_FREED_MEMORY=0`` turns it off). Returns whether it is on.

    Every forward pass frees and reallocates activation buffers of a few MB. By default glibc
    serves blocks above its mmap threshold with fresh ``mmap`` pages and trims the heap's top
    when it is freed, so each pass pays page faults in the kernel: measured here (1 thread),
    25-45 % of a small CNN's time in system calls. Raising the mmap threshold and the trim
    threshold (``mallopt``) keeps those pages mapped: no-gradient passes of notebook 04's ResNet5
    went from 5,300 to 8,200 images/s, EfficientNet-Lite0 at 64 px from 330 to 430 images/s and
    at 96 px from 154 to 226 (float results are unchanged: torch aligns its buffers itself).
    The price is that the process keeps its peak heap. Called by :func:`configure_threads` and
    in :func:`process_map`'s workers; a no-op where glibc is absent.
    """
    global _MALLOC_KEPT
    if _MALLOC_KEPT:
        return True
    if os.environ.get("VISXAI_KEEP_FREED_MEMORY", "1").strip() == "0":
        return False
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    # 1 GiB; a glibc that caps the threshold (at 32 MiB on 64-bit before 2.26) gets its cap
    mmap_ok = bool(mallopt(m_mmap_threshold, 1 << 30)) or bool(mallopt(m_mmap_threshold, 1 << 25))
    ok = mmap_ok and bool(mallopt(m_trim_threshold, (1 << 31) - 1))
    _MALLOC_KEPT = ok
    return ok


def cpu_workers(workers: int | None = None, device: str | torch.device | None = None) -> int:
    """Worker processes for a CPU map (:func:`process_map`): ``workers``, else 1 on a GPU, else
    ``$VISXAI_WORKERS``, else one per core that torch's threads leave free (cores // threads).

    With ``make`` (``VISXAI_THREADS=1``) a 2-core machine gets 2 workers; without it torch uses
    every core in one process and this gives 1. Runners that already run several notebooks side
    by side (``make nbval``) export ``VISXAI_WORKERS=1``.
    """
    if workers is not None:
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1 (or None: automatic), got {workers}")
        return int(workers)
    if device is not None and torch.device(device).type != "cpu":
        return 1
    env = os.environ.get("VISXAI_WORKERS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"$VISXAI_WORKERS must be a whole number >= 1, got {env!r}")
        return int(env)
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    return max(1, cores // max(1, torch.get_num_threads()))


_WORKER_QUEUE: Any = None  # set in a process_map worker: its relay to the parent's progress bar


class _QueueProgress:
    """A tqdm-like sink in a worker: ``update(k)`` sends ``k`` to the parent's bar."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def update(self, k: int = 1) -> None:
        self.queue.put(int(k))

    def close(self) -> None:
        pass


def worker_progress() -> _QueueProgress | None:
    """In a :func:`process_map` worker, an object with tqdm's ``update`` / ``close`` that moves
    the parent's progress bar; ``None`` elsewhere."""
    return _QueueProgress(_WORKER_QUEUE) if _WORKER_QUEUE is not None else None


def _init_worker(
    threads: int, deterministic: bool, warn_only: bool, queue: Any, filters: list
) -> None:
    import warnings

    global _WORKER_QUEUE
    keep_freed_memory()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    warnings.filters[:] = filters  # the parent's filters (e.g. a notebook's "ignore")
    _WORKER_QUEUE = queue


def _call_recording(fn: Callable[[Any], Any], part: Any) -> tuple[Any, list]:
    """``fn(part)`` in a worker, with the warnings it raised (re-issued by the parent)."""
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            out = fn(part)
    finally:
        if _WORKER_QUEUE is not None:  # end of this part: its updates are queued before it
            _WORKER_QUEUE.put(None)
    return out, [(str(w.message), w.category, w.filename, w.lineno) for w in caught]


def deal(n: int, workers: int) -> list[list[int]]:
    """The indices ``0 .. n-1`` dealt round-robin to ``workers`` parts (part ``k``: ``k, k +
    workers, ...``), so that expensive and cheap items mix in every part; see :func:`undeal`."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return [list(range(k, n, workers)) for k in range(workers)]


def undeal(parts: Sequence[Sequence[int]], outs: Sequence[Sequence[Any]]) -> list[Any]:
    """Per-part results (``outs[k][j]`` belongs to index ``parts[k][j]``) back in index order."""
    n = sum(len(p) for p in parts)
    out: list[Any] = [None] * n
    for idx, res in zip(parts, outs, strict=True):
        if len(idx) != len(res):
            raise ValueError(f"a part of {len(idx)} indices came back with {len(res)} results")
        for j, v in zip(idx, res):
            out[j] = v
    return out


def process_map(
    fn: Callable[[Any], Any],
    parts: Sequence[Any],
    workers: int,
    progress: Any = None,
) -> list[Any]:
    """``[fn(p) for p in parts]``, the parts in up to ``workers`` spawned processes.

    ``fn`` must be a module-level function and ``parts`` picklable (models and tensors are). Each
    worker uses the parent's torch thread count and deterministic-algorithms setting; the
    environment (e.g. the emulated-CPU variables) is inherited. ``progress``: a tqdm bar that the
    workers move through :func:`worker_progress`. The parent's warning filters apply in the
    workers, and the warnings they raise are re-issued here (so that a notebook shows them).
    With ``workers == 1`` or one part, the map runs here, in this process. An exception in a
    worker is raised here.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1 or len(parts) <= 1:
        return [fn(p) for p in parts]
    import multiprocessing as mp
    import queue as queue_mod
    import time
    import warnings
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    init = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        q,
        list(warnings.filters),
    )

    ended = 0  # parts whose end marker arrived: every update of theirs has been applied

    def drain(block: float) -> None:
        nonlocal ended
        try:
            while True:
                k = q.get(timeout=block)
                block = 0.0
                if k is None:
                    ended += 1
                elif progress is not None:
                    progress.update(k)
        except queue_mod.Empty:
            pass

    with ProcessPoolExecutor(
        max_workers=min(workers, len(parts)),
        mp_context=ctx,
        initializer=_init_worker,
        initargs=init,
    ) as pool:
        futures = [pool.submit(_call_recording, fn, p) for p in parts]
        try:
            while wait(futures, timeout=0.2).not_done:
                drain(0.0)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        results = [f.result() for f in futures]
        # a worker's queue is flushed by its own thread, possibly after its result arrived:
        # wait for every part's end marker (bounded, in case a worker died without sending it)
        deadline = time.monotonic() + 30.0
        while ended < len(parts) and time.monotonic() < deadline:
            drain(0.1)
    for _, caught in results:  # the workers' warnings, here, in part order
        for message, category, filename, lineno in caught:
            warnings.warn_explicit(message, category, filename, lineno)
    return [out for out, _ in results]


def seed_everything(seed: int = 0, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); optionally ask torch for deterministic kernels.

    Returns a CPU ``torch.Generator`` seeded with ``seed`` for code that wants its own stream.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return make_generator(seed)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def iter_chunks(n: int, chunk: int) -> Iterator[slice]:
    """Slices ``[0:chunk], [chunk:2*chunk], ...`` covering ``range(n)``."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.cuda.OutOfMemoryError) or "out of memory" in str(err).lower()


def batched_map(
    fn: Callable[..., Any],
    *tensors: torch.Tensor | Sequence[Any],
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool | str = False,
    min_batch_size: int = 1,
) -> Any:
    """Apply ``fn`` to aligned chunks of ``tensors`` along dim 0 and concatenate the results.

    ``fn`` returns a tensor, or a tuple/dict of tensors, per chunk; results are concatenated
    along dim 0 on the CPU. Chunks are moved to ``device`` if given. On an out-of-memory error
    the chunk size is halved (down to ``min_batch_size``) and the chunk retried, so callers can
    ask for large batches on a GPU without knowing its memory. ``progress`` shows a tqdm bar
    (a string is used as its description). Empty inputs give ``fn`` of the empty inputs.
    """
    if not tensors:
        raise ValueError("batched_map needs at least one tensor to split")
    n = len(tensors[0])
    for t in tensors[1:]:
        if len(t) != n:
            raise ValueError(f"batched_map: inputs have different lengths ({n} vs {len(t)})")
    dev = torch.device(device) if device is not None else None
    if n == 0:  # nothing to split: one call on the empty inputs keeps the output's type and shape
        empty = [t[0:0] for t in tensors]
        return fn(
            *[c.to(dev) if dev is not None and isinstance(c, torch.Tensor) else c for c in empty]
        )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=progress if isinstance(progress, str) else None, leave=False)
    outputs: list[Any] = []
    start, size = 0, max(int(batch_size), 1)
    while start < n:
        stop = min(start + size, n)
        chunk = [t[start:stop] for t in tensors]
        if dev is not None:
            chunk = [
                c.to(dev, non_blocking=True) if isinstance(c, torch.Tensor) else c for c in chunk
            ]
        try:
            out = fn(*chunk)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as err:
            if _is_oom(err) and size > min_batch_size:
                size = max(size // 2, min_batch_size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            raise
        outputs.append(_detach_cpu(out))
        if bar is not None:
            bar.update(stop - start)
        start = stop
    if bar is not None:
        bar.close()
    return _concat(outputs)


def _detach_cpu(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.detach().cpu()
    if isinstance(out, tuple | list):
        return type(out)(_detach_cpu(o) for o in out)
    if isinstance(out, dict):
        return {k: _detach_cpu(v) for k, v in out.items()}
    return out


def _concat(outputs: list[Any]) -> Any:
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(outputs, dim=0)
    if isinstance(first, tuple | list):
        return type(first)(_concat([o[i] for o in outputs]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _concat([o[k] for o in outputs]) for k in first}
    return outputs


@contextlib.contextmanager
def autocast(device: torch.device | str, enabled: bool = True, dtype: torch.dtype | None = None):
    """Mixed precision on CUDA (bfloat16 if supported, else float16); a no-op on the CPU.

    Attribution methods keep float32 on the CPU so that results are deterministic there.
    """
    device = torch.device(device)
    if not enabled or device.type != "cuda":
        yield
        return
    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield


def to_channels_last(model: nn.Module, x: torch.Tensor | None = None):
    """Convert ``model`` (and ``x`` if given) to channels_last memory format (faster convs)."""
    model = model.to(memory_format=torch.channels_last)
    if x is None:
        return model
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return model, x


def freeze(model: nn.Module) -> nn.Module:
    """Turn off parameter gradients (input gradients only: 1.5-1.7x faster backward)."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@contextlib.contextmanager
def frozen(model: nn.Module):
    """Context manager: parameters do not require grad inside, previous flags restored after."""
    flags = [p.requires_grad for p in model.parameters()]
    freeze(model)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
