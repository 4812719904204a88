"""A seeded training recipe and a config-hash checkpoint cache for the project's own models.

Written by hand (a plain PyTorch loop, no Lightning) because it is a dozen lines, must be
bit-for-bit deterministic on CPU for a given seed, and must run with the 2-core CI budget.

* :func:`train_classifier`: mini-batch cross-entropy training with Adam or SGD (+ momentum),
  shuffling from a dedicated ``torch.Generator`` seeded with ``seed``; tqdm progress.
* :func:`evaluate`: top-1 accuracy.
* :func:`cached`: ``cached(name, config, build, train)`` returns a trained model, training it
  at most once per config. Use it for any model the project trains itself (small CNNs, SSL
  stand-ins, RotNet heads, multi-label classifiers)::

      from visxai.models.training import cached, train_classifier

      cfg = {"arch": "SmallCNN3", "data": "mnist-10k", "epochs": 3, "lr": 1e-3, "seed": 0}
      model = cached(
          "mnist-cnn3", cfg,
          build=lambda: SmallCNN3(),
          train=lambda m: train_classifier(m, x, y, epochs=3, lr=1e-3, batch_size=64, seed=0),
      )

  The checkpoint is ``<name>-<hash>.safetensors`` with ``hash = config_hash(config)`` (sha256 of
  the JSON of ``config`` with sorted keys, first 12 hex digits), so every change in the config
  (hyper-parameters, data, architecture version...) names a new file. Put everything that
  changes the weights into ``config``. Lookup order:

  1. the repository's ``checkpoints/`` (:func:`visxai.paths.checkpoints_dir`; committed, its
     sha256 checked against ``checkpoints/CHECKSUMS`` when listed there),
  2. the cache ``<VISXAI_DATA>/models/`` (:func:`visxai.paths.data_dir`),
  3. else, seeded with ``config.get("seed", 0)`` (:func:`seeded`, which restores the caller's
     random state afterwards), ``model = build()``, ``train(model)``,
     save atomically (temp file + rename) into the cache and, with ``commit=True`` or the
     environment variable ``VISXAI_COMMIT_CHECKPOINTS=1``, into ``checkpoints/`` with its sha256
     appended to ``checkpoints/CHECKSUMS``.

  ``train`` may return a dict of JSON-serialisable metrics (e.g. test accuracy); it is stored
  in the safetensors metadata with the config and read back by :func:`checkpoint_metadata`.

  ``cached(..., keys=fn)`` stores a *partial* checkpoint: only the state-dict entries named by
  ``fn(model)`` (e.g. the trained tail and heads of a model whose frozen part comes from
  published weights that ``build()`` loads). At load, ``build()`` gives the rest and the file
  must hold exactly those keys (:func:`load_checkpoint` with ``keys=``). Without ``keys`` the
  whole state dict is stored, as before.
  Checkpoints are safetensors files (no pickle); ``.pt`` files are read with
  ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..device import make_generator
from ..paths import checkpoints_dir, data_dir

__all__ = [
    "train_classifier",
    "evaluate",
    "predict_logits",
    "config_hash",
    "checkpoint_name",
    "find_checkpoint",
    "cached",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_metadata",
    "sha256_file",
    "seeded",
    "model_cache_dir",
    "ChecksumMismatch",
    "random_affine",
    "random_patch_mask",
]

CHECKSUMS_FILE = "CHECKSUMS"
META_KEY = "visxai"
COMMIT_ENV = "VISXAI_COMMIT_CHECKPOINTS"


class ChecksumMismatch(RuntimeError):
    """A committed checkpoint whose sha256 differs from the one in checkpoints/CHECKSUMS."""


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with Python, NumPy and torch (CPU) seeded with ``seed``, restoring the caller's
    RNG states.

    So that building or training a model inside a notebook does not shift the notebook's own
    random stream (loading a committed checkpoint and training one leave the same state behind).
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)  # CPU generator (forked above); CUDA streams are left alone
        try:
            yield
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """A random affine map per image of ``x`` [B, C, H, W]: rotation in ``+-degrees``, shift in
    ``+-translate`` of the image size, isotropic scale in ``scale``; bilinear, zeros outside
    (the black background of MNIST). The usual MNIST augmentation (as torchvision's
    ``RandomAffine``), written with ``affine_grid`` because ``RandomAffine`` draws one transform
    per call from the global RNG: this draws one per image from ``generator`` (deterministic).
    """
    b = x.shape[0]
    u = torch.rand(b, 4, generator=generator).to(x.device, x.dtype)
    angle = (2 * u[:, 0] - 1) * degrees * torch.pi / 180
    s = scale[0] + (scale[1] - scale[0]) * u[:, 1]
    t = (2 * u[:, 2:] - 1) * translate * 2  # affine_grid's coordinates span [-1, 1]
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack(
        [torch.stack([cos, -sin, t[:, 0]], 1), torch.stack([sin, cos, t[:, 1]], 1)], 1
    )
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def _check_xy(x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch tensors")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    if not x.is_floating_point():
        raise TypeError(f"x must be floating point, got {x.dtype}")
    if y.dtype not in (torch.int64, torch.int32) and not y.is_floating_point():
        raise TypeError(f"y must be int64 class indices (or float targets), got {y.dtype}")


def random_patch_mask(
    x: torch.Tensor,
    generator: torch.Generator,
    ratio: float = 0.25,
    patch: int = 2,
    p: float = 0.5,
) -> torch.Tensor:
    """Blank (set to 0) a random ``ratio`` of the ``patch x patch`` cells of a random share ``p``
    of the images of ``x`` [B, C, H, W]: the masks of notebook 04 / Fill in the Blanks (section
    4.1) as a training augmentation. Not in the paper: a model trained with it is an extra,
    named row, never a default."""
    b, _, h, w = x.shape
    gh, gw = h // patch, w // patch
    scores = torch.rand(b, gh * gw, generator=generator)
    m = round(ratio * gh * gw)
    blank = torch.zeros(b, gh * gw).scatter_(1, scores.topk(m, dim=1, largest=False).indices, 1.0)
    blank *= (torch.rand(b, 1, generator=generator) < p).float()
    blank = blank.view(b, 1, gh, 1, gw, 1).expand(b, 1, gh, patch, gw, patch)
    keep = 1.0 - blank.reshape(b, 1, gh * patch, gw * patch)
    return x * keep.to(x.device, x.dtype)


def train_classifier(
    model: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    epochs: int = 3,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    schedule: str | None = "cosine",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "train",
    num_threads: int | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place with mini-batch SGD/Adam; returns ``{"loss": [per-epoch mean]}``.

    Deterministic for a given ``seed`` (shuffling uses its own generator; the caller seeds the
    initialisation, as :func:`cached` does). ``loss_fn`` defaults to cross-entropy (use
    ``BCEWithLogitsLoss`` for multi-label float targets); ``schedule="cosine"`` anneals the
    learning rate per step to 0, ``None`` keeps it constant. ``augment(x, generator)`` may
    transform each batch. ``num_threads`` sets torch's intra-op threads for the duration (on a
    busy shared CPU, 1 thread can be several times faster than 2). The model is left in eval mode.
    """
    _check_xy(train_x, train_y)
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError("epochs must be >= 0, batch_size >= 1 and lr > 0")
    device = torch.device(device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    gen = make_generator(seed)
    n = len(train_x)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    total = max(1, epochs * steps_per_epoch)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        if schedule == "cosine"
        else None
    )
    if schedule not in (None, "cosine"):
        raise ValueError(f"schedule must be 'cosine' or None, got {schedule!r}")
    history: dict[str, list[float]] = {"loss": []}
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        _train_loop(
            model,
            train_x,
            train_y,
            epochs,
            batch_size,
            opt,
            sched,
            loss_fn,
            augment,
            gen,
            device,
            history,
            tqdm(total=total, desc=desc, disable=not progress, leave=False),
        )
    finally:
        torch.set_num_threads(old_threads)
    model.eval()
    return history


def _train_loop(
    model,
    train_x,
    train_y,
    epochs,
    batch_size,
    opt,
    sched,
    loss_fn,
    augment,
    gen,
    device,
    history,
    bar,
):
    n = len(train_x)
    model.train()
    for _epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        running, seen = 0.0, 0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb = train_x[idx].to(device)
            yb = train_y[idx].to(device)
            if augment is not None:
                xb = augment(xb, gen)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{running / seen:.4f}", refresh=False)
        history["loss"].append(running / max(seen, 1))
    bar.close()


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: torch.Tensor, batch_size: int = 500, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched, on CPU."""
    was_training = model.training
    model.eval()
    out = [model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` (fraction in [0, 1])."""
    _check_xy(x, y)
    if len(x) == 0:
        raise ValueError("evaluate() needs at least one example")
    pred = predict_logits(model, x, batch_size, device).argmax(1)
    return float((pred == y.cpu()).float().mean())


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------


def config_hash(config: Mapping[str, Any]) -> str:
    """First 12 hex digits of sha256 of ``json.dumps(config, sort_keys=True)``."""
    try:
        blob = json.dumps(config, sort_keys=True, separators=(",", ":"))
    except TypeError as err:
        raise TypeError(
            f"config must be JSON-serialisable (str/int/float/bool/list/dict): {err}"
        ) from err
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def checkpoint_name(name: str, config: Mapping[str, Any]) -> str:
    """``<name>-<config_hash(config)>.safetensors``."""
    if not name or "/" in name or os.sep in name:
        raise ValueError(f"checkpoint name must be a plain, non-empty file stem, got {name!r}")
    return f"{name}-{config_hash(config)}.safetensors"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_checksums(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUMS_FILE
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                out[parts[1].lstrip("*")] = parts[0]
    return out


def _record_checksum(folder: Path, filename: str, digest: str) -> None:
    """Add/replace one line of ``CHECKSUMS`` (sha256sum format), under a lock (parallel
    trainers)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    model_cache_dir().mkdir(parents=True, exist_ok=True)  # the lock lives outside the repository
    with open(model_cache_dir() / ".checksums.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            sums = _read_checksums(folder)
            sums[filename] = digest
            text = "".join(f"{d}  {f}\n" for f, d in sorted(sums.items()))
            _atomic_write_bytes(folder / CHECKSUMS_FILE, text.encode())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _atomic_write_bytes(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _select_keys(model: nn.Module, keys: Iterable[str]) -> list[str]:
    """``keys`` as a sorted list, checked against ``model.state_dict()``."""
    wanted = sorted(set(keys))
    have = model.state_dict().keys()
    unknown = [k for k in wanted if k not in have]
    if unknown or not wanted:
        raise ValueError(
            f"keys must name entries of {type(model).__name__}.state_dict(); "
            + (f"unknown: {unknown[:5]}" if unknown else "got none")
        )
    return wanted


def save_checkpoint(
    model: nn.Module,
    path: str | Path,
    metadata: Mapping[str, Any] | None = None,
    keys: Iterable[str] | None = None,
) -> Path:
    """Save ``model.state_dict()`` as safetensors, atomically; ``metadata`` values stored as
    JSON. ``keys``: store only these entries (a partial checkpoint)."""
    from safetensors.torch import save

    path = Path(path)
    full = model.state_dict()
    names = list(full) if keys is None else _select_keys(model, keys)
    state = {k: full[k].detach().cpu().contiguous().clone() for k in names}
    # one metadata key: safetensors writes a multi-key metadata map in random order, which would
    # make the file bytes (and the sha256 in CHECKSUMS) differ between identical trainings
    meta = {META_KEY: json.dumps(dict(metadata or {}), sort_keys=True)}
    _atomic_write_bytes(path, save(state, metadata=meta))
    return path


def load_checkpoint(
    model: nn.Module, path: str | Path, strict: bool = True, keys: Iterable[str] | None = None
) -> nn.Module:
    """Load a ``.safetensors`` (or ``.pt``/``.pth`` with ``weights_only=True``) state dict into
    ``model``.

    ``keys``: a partial checkpoint that must hold exactly these entries; the others keep the
    values ``model`` has (``ValueError`` naming the difference otherwise)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device="cpu")
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if (
            isinstance(state, dict)
            and "state_dict" in state
            and isinstance(state["state_dict"], dict)
        ):
            state = state["state_dict"]
    if keys is not None:
        wanted = set(_select_keys(model, keys))
        if set(state) != wanted:
            missing, extra = sorted(wanted - set(state)), sorted(set(state) - wanted)
            raise ValueError(
                f"{path.name} is not the partial checkpoint expected: missing {missing[:5]}, "
                f"unexpected {extra[:5]}; delete it to retrain"
            )
        model.load_state_dict(state, strict=False)
        return model
    model.load_state_dict(state, strict=strict)
    return model


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata stored by :func:`save_checkpoint` (JSON-decoded; ``config``, ``metrics``...)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if META_KEY in meta:
        return json.loads(meta[META_KEY])
    out: dict[str, Any] = {}  # files written by other tools: one JSON (or plain) value per key
    for k, v in meta.items():
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[k] = v
    return out


def model_cache_dir() -> Path:
    """Where trained checkpoints go when they are not committed: ``<VISXAI_DATA>/models``."""
    return data_dir() / "models"


def find_checkpoint(name: str, config: Mapping[str, Any]) -> Path | None:
    """The committed or cached checkpoint for ``(name, config)``, or ``None``.

    A committed file listed in ``checkpoints/CHECKSUMS`` is verified (``ChecksumMismatch``).
    """
    fname = checkpoint_name(name, config)
    committed = checkpoints_dir() / fname
    if committed.is_file():
        expected = _read_checksums(checkpoints_dir()).get(fname)
        if expected is not None and sha256_file(committed) != expected:
            raise ChecksumMismatch(
                f"{committed} has sha256 {sha256_file(committed)} but checkpoints/{CHECKSUMS_FILE} "
                f"says {expected}; restore it with `git checkout -- checkpoints/{committed.name}` "
                "or delete it to retrain"
            )
        return committed
    cached_file = model_cache_dir() / fname
    return cached_file if cached_file.is_file() else None


def cached(
    name: str | Mapping[str, Any],
    config: Mapping[str, Any] | None = None,
    build: Callable[[], nn.Module] | None = None,
    train: Callable[[nn.Module], Any] | None = None,
    *,
    commit: bool | None = None,
    strict: bool = True,
    keys: Callable[[nn.Module], Iterable[str]] | None = None,
) -> nn.Module:
    """Return ``build()`` with trained weights, training with ``train(model)`` only if no checkpoint
    exists.

    See the module docstring for the lookup order and file naming. ``cached(config, build=...,
    train=...)`` (config first) is accepted too; the name is then ``config["name"]`` or ``"model"``.
    ``keys(model)``: the state-dict entries to store and load (a partial checkpoint; the rest
    comes from ``build()``). The returned model is on CPU in eval mode.
    """
    if isinstance(name, Mapping):  # cached(config, build, train)
        if callable(config):
            if train is not None:
                raise TypeError("cached(config, build, train) got too many positional arguments")
            build, train = config, build  # type: ignore[assignment]
        elif config is not None:
            raise TypeError(
                "cached(): give either (name, config, build, train) or (config, build, train)"
            )
        config = name
        name = str(config.get("name", "model"))
    if config is None or build is None or train is None:
        raise TypeError("cached() needs name, config, build and train")
    config = dict(config)
    path = find_checkpoint(name, config)
    with seeded(int(config.get("seed", 0))):
        model = build()
        selected = None if keys is None else list(keys(model))
        if path is not None:
            load_checkpoint(model, path, strict=strict, keys=selected)
            return model.cpu().eval()
        metrics = train(model)
    model = model.cpu().eval()
    fname = checkpoint_name(name, config)
    meta: dict[str, Any] = {"name": name, "config": config}
    if isinstance(metrics, Mapping):
        meta["metrics"] = dict(metrics)
    if selected is not None:
        meta["partial"] = True  # the rest of the state dict comes from build()
    target = save_checkpoint(model, model_cache_dir() / fname, meta, keys=selected)
    if commit is None:
        commit = os.environ.get(COMMIT_ENV, "").lower() in ("1", "true", "yes")
    if commit:
        dest = checkpoints_dir() / fname
        _atomic_write_bytes(dest, target.read_bytes())
        _record_checksum(checkpoints_dir(), fname, sha256_file(dest))
    return model
