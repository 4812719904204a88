"""Paper-scale evaluation sharded over processes and GPUs with ``torchrun`` (torch.distributed).

The evaluation of Tables 2-5 is a map over images: explain image ``i``, perturb or segment it,
keep a few numbers per image. :func:`run_sharded` runs such a map so that

* the index range ``0..N-1`` is cut into fixed chunks (``chunk_size``, independent of the
  number of processes, so one process and eight give bit-identical per-image results);
* rank ``r`` of ``W`` takes chunks ``r, r+W, r+2W, ...`` (gloo on CPU, nccl on GPUs, one GPU
  per local rank);
* every finished chunk is written at once, atomically (temp file + rename), as a safetensors
  file ``<out>/chunk_<start>_<stop>.safetensors``; a restarted run (after a crash, a pre-emption,
  Ctrl-C) skips the chunks already on disk and computes only the rest;
* the per-image results are gathered on rank 0 (``torch.distributed.gather_object``) and
  returned there in index order (other ranks get ``None``).

A ``run.json`` in the output folder records ``n``, ``chunk_size`` and a caller-chosen
``fingerprint`` (task, model, method, ...); resuming into a folder written by a different task
raises instead of silently mixing results.

Command line (the torchrun entry point; the same command without torchrun runs one process)::

    torchrun --standalone --nproc_per_node=2 -m visxai.distributed negative-perturbation \\
        --model fmnist-vgg --method agf --data fashion-mnist --num-images 10000 \\
        --explain predicted --out runs/np-fmnist-vgg-agf
    # paper scale (GPU node, 8 GPUs): --model vgg19 --data imagenet-val --num-images 50000
    torchrun --standalone --nproc_per_node=8 -m visxai.distributed negative-perturbation \\
        --profile paper --model vgg19 --method agf --data imagenet-val --num-images 50000 \\
        --explain target --out runs/np-vgg19-agf-target
    # segmentation (Table 3 analogue): the synthetic multi-object set, the multi-label CNN
    torchrun --standalone --nproc_per_node=2 -m visxai.distributed segmentation \\
        --model synthetic-multilabel --method agf --data synthetic --num-images 2000 \\
        --out runs/seg-synthetic-agf

    # paper scale, Table 3 (ImageNet-Segmentation, the paper's VGG-19, predicted class)
    torchrun --standalone --nproc_per_node=8 -m visxai.distributed segmentation \\
        --profile paper --model vgg19 --method agf --data imagenet-seg --num-images 4276 \\
        --out runs/seg-imagenet-vgg19-agf

The per-image results are read back with :func:`load_results`. The case (model, images, targets,
masks) comes from :func:`visxai.evaluation.eval_case`: ``--data synthetic`` uses the project's
multi-label CNN and explains every class with probability > 0.5 that is present in the image; a
segmentation run has one row per explained (image, class) pair, with its ``image`` and ``class``.
A missing artefact or a bad case ends the run with a one-line message and exit status 2.

Written by hand: the sharding, resume and gather logic is ~100 lines on top of
``torch.distributed`` and safetensors; no maintained library offers resumable per-item maps
(Lightning's and Accelerate's evaluation loops do not resume mid-epoch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .device import iter_chunks

__all__ = [
    "DistContext",
    "init_distributed",
    "run_sharded",
    "load_results",
    "chunk_path",
    "main",
]


class DistContext:
    """Rank, world size and the device of this process."""

    def __init__(
        self, rank: int, world_size: int, local_rank: int, device: torch.device, initialised: bool
    ) -> None:
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.device = device
        self.initialised = initialised

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.initialised:
            dist.barrier()

    def close(self) -> None:
        if self.initialised and dist.is_initialized():
            dist.destroy_process_group()
            self.initialised = False

    def __repr__(self) -> str:
        return f"DistContext(rank={self.rank}, world_size={self.world_size}, device={self.device})"


def init_distributed(device: str = "auto", backend: str | None = None) -> DistContext:
    """Join the process group started by ``torchrun`` (env ``WORLD_SIZE`` > 1), else a single
    process.

    ``backend`` defaults to nccl when the processes use CUDA devices and gloo otherwise. Each
    local rank takes GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = (device == "auto" and torch.cuda.is_available()) or str(device).startswith("cuda")
    if use_cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    else:
        dev = torch.device("cpu")
    if world <= 1:
        return DistContext(0, 1, 0, dev, False)
    if not dist.is_initialized():
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, True)


def chunk_path(out_dir: str | Path, start: int, stop: int) -> Path:
    """Where the results of indices ``start..stop-1`` are kept."""
    return Path(out_dir) / f"chunk_{start:08d}_{stop:08d}.safetensors"


def _save_chunk(path: Path, results: Mapping[str, torch.Tensor], start: int, stop: int) -> None:
    from safetensors.torch import save

    n = stop - start
    tensors = {}
    for k, v in results.items():
        v = torch.as_tensor(v).detach().cpu().contiguous()
        if v.dim() == 0 or v.shape[0] != n:
            raise ValueError(
                f"result {k!r} must have one row per image ({n}), got shape {tuple(v.shape)}"
            )
        if v.dtype == torch.bool:
            v = v.to(torch.uint8)
        tensors[k] = v
    # one metadata key: safetensors writes a metadata dict in hash order, so two keys made chunk
    # files of identical results differ byte-wise between runs; one key keeps them canonical
    blob = save(tensors, metadata={"range": f"{start}:{stop}"})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_chunk(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")


def _check_run_file(
    out_dir: Path, n: int, chunk_size: int, fingerprint: Mapping[str, Any], ctx: DistContext
) -> None:
    meta = {"n": int(n), "chunk_size": int(chunk_size), "fingerprint": dict(fingerprint)}
    run_file = out_dir / "run.json"
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        if run_file.is_file():
            old = json.loads(run_file.read_text())
            if old != json.loads(json.dumps(meta)):
                raise RuntimeError(
                    f"{out_dir} holds results of a different run ({old}); this run is {meta}. "
                    "Use another --out folder or delete that one."
                )
        else:
            tmp = run_file.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(meta, indent=1, sort_keys=True))
            tmp.replace(run_file)
    ctx.barrier()


def run_sharded(
    fn: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
    n: int,
    out_dir: str | Path,
    chunk_size: int = 64,
    fingerprint: Mapping[str, Any] | None = None,
    ctx: DistContext | None = None,
    progress: bool = True,
) -> dict[str, torch.Tensor] | None:
    """Compute ``fn(indices)`` for all chunks of ``range(n)``, resumably, sharded over the ranks.

    ``fn`` gets a 1-D int64 tensor of image indices and returns a dict of tensors with one row
    per index. Results already on disk are not recomputed. Returns the concatenated results
    (index order) on rank 0 and ``None`` on the other ranks.
    """
    if n < 1 or chunk_size < 1:
        raise ValueError(f"n and chunk_size must be >= 1, got n={n}, chunk_size={chunk_size}")
    ctx = ctx or init_distributed()
    out = Path(out_dir)
    _check_run_file(out, n, chunk_size, fingerprint or {}, ctx)
    chunks = list(iter_chunks(n, chunk_size))
    mine = chunks[ctx.rank :: ctx.world_size]
    todo = [s for s in mine if not chunk_path(out, s.start, s.stop).is_file()]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=f"rank {ctx.rank}", position=ctx.rank, leave=False)
    for s in todo:
        idx = torch.arange(s.start, s.stop, dtype=torch.int64)
        res = fn(idx)
        _save_chunk(chunk_path(out, s.start, s.stop), res, s.start, s.stop)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    local = [(s.start, _load_chunk(chunk_path(out, s.start, s.stop))) for s in mine]
    if ctx.initialised:
        gathered: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
        dist.gather_object(local, gathered, dst=0)
        if not ctx.is_main:
            return None
        parts = [p for g in gathered for p in g]  # type: ignore[union-attr]
    else:
        parts = local
    parts.sort(key=lambda p: p[0])
    return _concat_parts([p[1] for p in parts])


def _concat_parts(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    keys = list(parts[0].keys())
    return {k: torch.cat([p[k] for p in parts], dim=0) for k in keys}


def load_results(out_dir: str | Path) -> dict[str, torch.Tensor]:
    """All per-image results of a finished run folder, in index order (raises if incomplete)."""
    out = Path(out_dir)
    run_file = out / "run.json"
    if not run_file.is_file():
        raise FileNotFoundError(f"{out} is not a run folder (no run.json)")
    meta = json.loads(run_file.read_text())
    chunks = list(iter_chunks(meta["n"], meta["chunk_size"]))
    missing = [
        f"{s.start}-{s.stop}" for s in chunks if not chunk_path(out, s.start, s.stop).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"{out}: {len(missing)} of {len(chunks)} chunks missing (first: {missing[:3]}); "
            "resume the run"
        )
    return _concat_parts([_load_chunk(chunk_path(out, s.start, s.stop)) for s in chunks])


# ------------------------------------------------------------------------------------------
# command line: the evaluation tasks of notebook 02 at any scale
# ------------------------------------------------------------------------------------------


def _task_fn(
    args: argparse.Namespace, ctx: DistContext
) -> tuple[Callable[[torch.Tensor], dict[str, torch.Tensor]], int]:
    """``(fn, n)`` for the task: the case comes from :func:`visxai.evaluation.eval_case`, the
    method's facts from the registry; ``fn(idx)`` computes the per-item results of items ``idx``.

    Segmentation items are images: each row also records the ``image`` and its ``class`` (Table
    3a: the explained top class; Table 3b: the predicted labels ``[K]``, all explained and scored
    together as the authors do).
    """
    from .evaluation import (
        eval_case,
        method_fn,
        multilabel_segmentation_eval,
        negative_perturbation_eval,
        segmentation_eval,
    )
    from .methods.registry import get_method

    method = get_method(args.method)
    case = eval_case(
        args.data,
        args.profile,
        n=args.num_images,
        seed=args.seed,
        device=ctx.device,
        model=None if args.data == "synthetic" else args.model,
    )
    model = case.model.to(ctx.device).eval()
    explain_fn = method_fn(method.name)

    def fn(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        xb, yb, masks = case.get(idx)
        if args.task == "negative-perturbation":
            curve, _ = negative_perturbation_eval(
                model,
                xb,
                yb,
                explain_fn,
                explain_class=args.explain,
                normalize=case.normalize,
                batch_size=args.batch_size,
            )
            return {
                "correct": torch.from_numpy(curve.correct),
                "pred": torch.from_numpy(curve.predictions),
            }
        evaluate = multilabel_segmentation_eval if case.multilabel else segmentation_eval
        sc, _ = evaluate(
            model,
            xb,
            yb,
            masks,
            explain_fn,
            signed=method.signed,
            normalize=case.normalize,
            batch_size=args.batch_size,
        )
        return {
            "correct": torch.from_numpy(sc.correct),
            "labeled": torch.from_numpy(sc.labeled),
            "ap": torch.from_numpy(sc.ap),
            "image": case.image_index[idx],
            "class": yb,
        }

    return fn, case.n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="torchrun --nproc_per_node=K -m visxai.distributed", description=__doc__.split("\n")[0]
    )
    p.add_argument("task", choices=["negative-perturbation", "segmentation"])
    p.add_argument("--profile", choices=["offline", "paper"], default="offline")
    p.add_argument(
        "--model", required=True, help="a visxai.models.load_model name, e.g. fmnist-vgg or vgg19"
    )
    p.add_argument(
        "--method", default="agf", help="a registered method (visxai.methods.method_names())"
    )
    p.add_argument(
        "--data",
        default="fashion-mnist",
        help="fashion-mnist | synthetic | imagenet-val | imagenet-seg | voc2012",
    )
    # not --n: torchrun's own parser reads `--n` as an abbreviation of its --nnodes/--nproc-per-node
    p.add_argument(
        "--num-images", type=int, default=1000, help="number of images (the first N of the split)"
    )
    p.add_argument("--explain", choices=["predicted", "target"], default="predicted")
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run folder (per-image results; resumable)")
    return p


DATA_SETS = ("fashion-mnist", "synthetic", "imagenet-val", "imagenet-seg", "voc2012")
CLASSIFICATION_SETS = ("fashion-mnist", "imagenet-val")
SEGMENTATION_SETS = ("synthetic", "imagenet-seg", "voc2012")


def validate_args(args: argparse.Namespace) -> None:
    """Reject a bad argument before anything is loaded or written (a run folder included).

    Raises ``SystemExit`` (through ``argparse``'s ``error``) naming the argument and its choices.
    """
    from .methods.registry import METHODS

    def fail(msg: str) -> None:
        build_parser().error(msg)

    if args.method not in METHODS:
        fail(f"--method {args.method!r} is not a method; choose one of {sorted(METHODS)}")
    if args.data not in DATA_SETS:
        fail(f"--data {args.data!r} is not a data set; choose one of {list(DATA_SETS)}")
    if args.task == "negative-perturbation" and args.data not in CLASSIFICATION_SETS:
        fail(f"--data {args.data} is a segmentation set: use the segmentation task")
    if args.task == "segmentation" and args.data not in SEGMENTATION_SETS:
        fail(
            f"--data {args.data} has no segmentation masks; choose one of {list(SEGMENTATION_SETS)}"
        )
    if args.num_images < 1 or args.chunk_size < 1 or args.batch_size < 1:
        fail(
            "--num-images, --chunk-size and --batch-size must be >= 1, got "
            f"{args.num_images}, {args.chunk_size}, {args.batch_size}"
        )
    if args.data not in ("synthetic", "imagenet-seg", "voc2012"):
        from .models.zoo import list_models

        known = list_models()
        if args.model.lower().replace("_", "-") not in known:
            fail(f"--model {args.model!r} is not a visxai model; choose one of {sorted(known)}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    validate_args(args)
    ctx = init_distributed(args.device)
    torch.manual_seed(args.seed)
    try:
        fn, n = _task_fn(args, ctx)
    except (ValueError, FileNotFoundError) as err:  # ArtefactMissing is a FileNotFoundError
        ctx.close()
        print(f"visxai.distributed {args.task}: {err}", file=sys.stderr)
        return 2
    fp = {k: v for k, v in vars(args).items() if k not in ("out", "device", "batch_size")}
    try:
        res = run_sharded(fn, n, args.out, chunk_size=args.chunk_size, fingerprint=fp, ctx=ctx)
        if ctx.is_main and res is not None:
            if args.task == "negative-perturbation":
                from .metrics.negative_perturbation import DEFAULT_FRACTIONS, curve_auc

                acc = 100.0 * res["correct"].float().mean(0).numpy()
                fr = [0.0, *DEFAULT_FRACTIONS]
                print(
                    json.dumps(
                        {
                            "n": n,
                            "accuracy": [round(float(a), 3) for a in acc],
                            "auc": round(curve_auc(fr, acc), 3),
                        }
                    )
                )
            else:
                pa = 100.0 * float(res["correct"].sum()) / float(res["labeled"].sum())
                ap = res["ap"].double()
                print(
                    json.dumps(
                        {
                            "n": n,
                            "pixel_accuracy": round(pa, 3),
                            "mAP": round(100.0 * float(ap.mean()), 3),
                        }
                    )
                )
    finally:
        ctx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
