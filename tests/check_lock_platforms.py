"""Does requirements.lock install on Linux x86-64, macOS arm64 and Windows x86-64?

For each target platform: evaluate the lock's environment markers for that platform (pip would
evaluate them for the machine it runs on), then ask pip, without installing anything, whether
every remaining pin has a wheel for that platform (`pip install --dry-run --no-deps
--only-binary=:all: --platform ...`). A few pins are pure-Python source distributions with no
wheel at all; they install the same way everywhere and are listed in SDIST_ONLY.

Run: `python tests/check_lock_platforms.py [linux|macos-arm64|windows]...` (needs the package
registry; `make check-lock` runs all three). Exit status 1 names the platform and the pin.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# pure-Python packages published only as source distributions (no wheel for any platform)
SDIST_ONLY = ("antlr4-python3-runtime", "grad-cam")

TARGETS = {
    "linux": dict(
        platforms=[f"manylinux_2_{v}_x86_64" for v in range(28, 16, -1)]
        + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"],
        env={
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "platform_machine": "x86_64",
        },
    ),
    "macos-arm64": dict(
        platforms=[f"macosx_{v}_0_arm64" for v in (15, 14, 13, 12, 11)],
        env={
            "sys_platform": "darwin",
            "platform_system": "Darwin",
            "os_name": "posix",
            "platform_machine": "arm64",
        },
    ),
    "windows": dict(
        platforms=["win_amd64"],
        env={
            "sys_platform": "win32",
            "platform_system": "Windows",
            "os_name": "nt",
            "platform_machine": "AMD64",
        },
    ),
}


def pins_for(target: str, lock: Path = ROOT / "requirements.lock") -> list[str]:
    """The lock's pins whose markers hold on ``target`` (markers removed)."""
    env = {
        "python_version": "3.11",
        "python_full_version": "3.11.9",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        **TARGETS[target]["env"],
    }
    out = []
    for line in lock.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or Marker(str(req.marker)).evaluate(env):
            out.append(f"{req.name}{req.specifier}")
    return out


def check(target: str) -> bool:
    pins = pins_for(target)
    with tempfile.TemporaryDirectory() as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join(pins) + "\n")
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            f"--no-binary={','.join(SDIST_ONLY)}",
            "--python-version",
            "3.11.9",
            "--implementation",
            "cp",
            "--target",
            str(Path(tmp) / "target"),
            "-r",
            str(reqs),
        ]
        for p in TARGETS[target]["platforms"]:
            cmd += ["--platform", p]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if res.returncode == 0:
        print(f"check-lock: {target}: all {len(pins)} pins have a distribution")
        return True
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("ERROR")]
    print(
        f"check-lock: {target}: FAILED\n  "
        + "\n  ".join(errors[-4:] or res.stderr.splitlines()[-4:])
    )
    return False


def main(argv: list[str]) -> int:
    targets = argv or list(TARGETS)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        print(
            f"check-lock: unknown target(s) {unknown}; choose from {list(TARGETS)}", file=sys.stderr
        )
        return 2
    ok = [check(t) for t in targets]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
