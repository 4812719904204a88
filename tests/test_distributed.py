"""The torchrun path of visxai.distributed: 2 CPU processes (gloo) give the same per-image
results as one process, also after an interruption and a resume that recomputes nothing."""

import os
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
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3)
        ).eval()
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
            return {"correct": torch.from_numpy(curve.correct),
                    "pred": torch.from_numpy(curve.predictions),
                    "ap": torch.from_numpy(seg.ap), "maps": maps}
        return fn

    if __name__ == "__main__":
        out, log_dir = sys.argv[1], sys.argv[2]
        ctx = init_distributed("cpu")
        try:
            res = run_sharded(make_task(log_dir), 22, out, chunk_size=4,
                              fingerprint={"task": "tiny"}, ctx=ctx, progress=False)
            if ctx.is_main:
                torch.save(res, Path(out) / "gathered.pt")
        finally:
            ctx.close()
    """
)


def _torchrun(
    script: Path, out: Path, log: Path, nproc: int = 2, fail_at: int | None = None
) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("FAIL_AT_CHUNK", None)
    if fail_at is not None:
        env["FAIL_AT_CHUNK"] = str(fail_at)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "--max_restarts=0",
        str(script),
        str(out),
        str(log),
    ]
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
    single = run_sharded(
        task.make_task(log1),
        N,
        tmp / "single",
        chunk_size=CHUNK,
        fingerprint={"task": "tiny"},
        progress=False,
    )
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
        run_sharded(
            lambda idx: {"a": idx},
            N,
            tmp / "single",
            chunk_size=CHUNK,
            fingerprint={"task": "other"},
            progress=False,
        )


def test_results_need_one_row_per_image(tmp_path):
    with pytest.raises(ValueError, match="one row per image"):
        run_sharded(
            lambda idx: {"a": torch.zeros(1)}, 5, tmp_path / "bad", chunk_size=5, progress=False
        )
    with pytest.raises(FileNotFoundError, match="chunks missing"):
        load_results(tmp_path / "bad")


# ------------------------------------------------------------------------------------------
# the command line as the README documents it
# ------------------------------------------------------------------------------------------

README_OFFLINE_NP = (
    "negative-perturbation --model fmnist-vgg --method agf --data fashion-mnist "
    "--num-images {n} --explain predicted --out {out}"
)


def test_no_option_of_ours_is_a_prefix_of_a_torchrun_option():
    # torchrun's argparse reads abbreviations: `--n` was taken as --nnodes / --nproc-per-node
    from torch.distributed.run import get_args_parser

    from visxai.distributed import build_parser

    theirs = [s for a in get_args_parser()._actions for s in a.option_strings if s.startswith("--")]
    ours = [
        s
        for a in build_parser()._actions
        for s in a.option_strings
        if s.startswith("--") and s != "--help"
    ]
    clashes = {o: [t for t in theirs if t.startswith(o)] for o in ours}
    assert not {o: t for o, t in clashes.items() if t}


def test_a_bad_argument_writes_nothing(tmp_path, capsys):
    from visxai.distributed import main

    out = tmp_path / "run"
    with pytest.raises(SystemExit) as err:
        main(
            README_OFFLINE_NP.format(n=4, out=out)
            .replace("--method agf", "--method nosuch")
            .split()
        )
    assert err.value.code == 2
    assert "--method 'nosuch' is not a method" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit):
        main(
            ["segmentation", "--model", "fmnist-vgg", "--data", "fashion-mnist", "--out", str(out)]
        )
    assert "has no segmentation masks" in capsys.readouterr().err
    assert not out.exists()


def test_chunk_files_are_byte_stable(tmp_path):
    import hashlib

    from visxai.distributed import _save_chunk

    res = {"b": torch.arange(4), "a": torch.ones(4, 2)}
    digests = set()
    for k in range(5):  # a fresh interpreter each time: safetensors' hash order varies per process
        path = tmp_path / f"c{k}.safetensors"
        code = (
            "import sys, torch; from pathlib import Path; "
            "from visxai.distributed import _save_chunk; "
            "_save_chunk(Path(sys.argv[1]), {'b': torch.arange(4), 'a': torch.ones(4, 2)}, 0, 4)"
        )
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    _save_chunk(tmp_path / "here.safetensors", res, 0, 4)
    digests.add(hashlib.sha256((tmp_path / "here.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1


def test_the_readme_offline_command_runs_under_torchrun_and_matches_one_process(tmp_path):
    """The README's offline torchrun command, as written, on 8 images: 2 ranks == 1 process."""
    import json
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert (
        "torchrun --standalone --nproc_per_node=2 -m visxai.distributed negative-perturbation"
        in readme
    )
    assert re.search(
        r"--model fmnist-vgg --method agf --data fashion-mnist --num-images \d+ "
        r"--explain predicted",
        readme,
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = (
        [str(torchrun)] if torchrun.exists() else [sys.executable, "-m", "torch.distributed.run"]
    )
    two = subprocess.run(
        [
            *launcher,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "visxai.distributed",
            *README_OFFLINE_NP.format(n=8, out=tmp_path / "two").split(),
            "--chunk-size",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "visxai.distributed",
            *README_OFFLINE_NP.format(n=8, out=tmp_path / "one").split(),
            "--chunk-size",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    last = [
        json.loads(ln)
        for ln in (two.stdout.strip().splitlines()[-1], one.stdout.strip().splitlines()[-1])
    ]
    assert last[0] == last[1] and last[0]["n"] == 8
    _same(load_results(tmp_path / "two"), load_results(tmp_path / "one"))
