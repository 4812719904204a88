"""The torchrun path of visxai.distributed: 2 CPU processes (gloo) give the same per-image
results as one process, also after an interruption and a resume that recomputes nothing."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from visxai.distributed import chunk_path, load_results, run_sharded

N, CHUNK = 22, 4  # 6 chunks, the last one short

TASK = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import torch
    from torch import nn
    torch.set_num_threads(1)
    from visxai.distributed import init_distributed, run_sharded
    from visxai.metrics.negative_perturbation import negative_perturbation
    from visxai.metrics.segmentation import segmentation_scores

    def make_task(log_dir):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(22, 1, 8, 8, generator=g)
        y = torch.randint(0, 3, (22,), generator=g)
        masks = (torch.rand(22, 8, 8, generator=g) > 0.5).long()
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3)).eval()
        fail_at = int(os.environ.get("FAIL_AT_CHUNK", "-1"))

        def fn(idx):
            if int(idx[0]) == fail_at * 4:
                raise RuntimeError("simulated interruption")
            (Path(log_dir) / f"computed_{int(idx[0])}_{os.getpid()}").touch()
            xb = x[idx].clone().requires_grad_(True)
            out = model(xb)
            pred = out.argmax(1)
            out.gather(1, pred[:, None]).sum().backward()
            maps = (xb.grad * xb).sum(1).detach()
            curve = negative_perturbation(model, x[idx], maps, y[idx], batch_size=3)
            seg = segmentation_scores(maps, masks[idx], signed=True)
            return {"correct": torch.from_numpy(curve.correct), "pred": torch.from_numpy(curve.predictions),
                    "ap": torch.from_numpy(seg.ap), "maps": maps}
        return fn

    if __name__ == "__main__":
        out, log_dir = sys.argv[1], sys.argv[2]
        ctx = init_distributed("cpu")
        try:
            res = run_sharded(make_task(log_dir), 22, out, chunk_size=4, fingerprint={"task": "tiny"}, ctx=ctx, progress=False)
            if ctx.is_main:
                torch.save(res, Path(out) / "gathered.pt")
        finally:
            ctx.close()
    """
)


def _torchrun(script: Path, out: Path, log: Path, nproc: int = 2, fail_at: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("FAIL_AT_CHUNK", None)
    if fail_at is not None:
        env["FAIL_AT_CHUNK"] = str(fail_at)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "--max_restarts=0", str(script), str(out), str(log)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    script = tmp / "task.py"
    script.write_text(TASK)
    sys.path.insert(0, str(tmp))
    import task  # noqa: F401  (the same task, run in this process)

    log1 = tmp / "log1"
    log1.mkdir()
    single = run_sharded(task.make_task(log1), N, tmp / "single", chunk_size=CHUNK, fingerprint={"task": "tiny"}, progress=False)
    sys.path.remove(str(tmp))
    return tmp, script, single


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_single_process_results_are_complete(setup):
    tmp, _, single = setup
    assert single["correct"].shape == (N, 10)
    assert single["maps"].shape == (N, 8, 8)
    _same(single, load_results(tmp / "single"))


def test_two_gloo_processes_match_one_and_resume_after_interruption(setup):
    tmp, script, single = setup
    # 1) a clean 2-process run: identical per-image results, gathered on rank 0
    out, log = tmp / "two", tmp / "log2"
    log.mkdir()
    r = _torchrun(script, out, log)
    assert r.returncode == 0, r.stderr[-3000:]
    _same(torch.load(out / "gathered.pt", weights_only=True), single)
    pids = {p.name.split("_")[2] for p in log.iterdir()}
    assert len(pids) == 2  # both ranks did work

    # 2) interrupted run: rank 1 fails on chunk 3 (its 2nd chunk) -> torchrun stops all ranks
    out, log = tmp / "resume", tmp / "log3"
    log.mkdir()
    r = _torchrun(script, out, log, fail_at=3)
    assert r.returncode != 0
    done_before = {p.name for p in out.glob("chunk_*.safetensors")}
    assert chunk_path(out, 4, 8).name in done_before  # rank 1 saved chunk 1 before failing
    assert chunk_path(out, 12, 16).name not in done_before
    assert not (out / "gathered.pt").exists()
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("chunk_*.safetensors")}
    computed_before = {p.name for p in log.iterdir()}

    # 3) resume: only the missing chunks are computed, results identical to the single run
    r = _torchrun(script, out, log)
    assert r.returncode == 0, r.stderr[-3000:]
    _same(torch.load(out / "gathered.pt", weights_only=True), single)
    new = {p.name.split("_")[1] for p in log.iterdir()} - {p.split("_")[1] for p in computed_before}
    starts_before = {int(n.split("_")[1]) for n in done_before}
    assert new and not ({int(s) for s in new} & starts_before)  # nothing recomputed
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # files untouched


def test_resume_into_a_different_run_is_refused(setup):
    tmp, _, _ = setup
    with pytest.raises(RuntimeError, match="different run"):
        run_sharded(lambda idx: {"a": idx}, N, tmp / "single", chunk_size=CHUNK, fingerprint={"task": "other"}, progress=False)


def test_results_need_one_row_per_image(tmp_path):
    with pytest.raises(ValueError, match="one row per image"):
        run_sharded(lambda idx: {"a": torch.zeros(1)}, 5, tmp_path / "bad", chunk_size=5, progress=False)
    with pytest.raises(FileNotFoundError, match="chunks missing"):
        load_results(tmp_path / "bad")
