"""The pins: environment.yml, requirements.lock and pyproject.toml agree."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].split(";")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock line {line!r} is not an exact pin"
            pins[name.lower().replace("_", "-")] = version.strip()
    return pins


def test_cuda_only_pins_carry_a_linux_marker_and_jupyterlab_is_pinned():
    """torch's CUDA wheels exist for Linux only: unmarked, they broke the lock on macOS/Windows."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from check_lock_platforms import pins_for

    mac, win, linux = (
        set(p.split("==")[0] for p in pins_for(t)) for t in ("macos-arm64", "windows", "linux")
    )
    cuda = {
        n
        for n in linux
        if n.startswith("nvidia-") or n in ("triton", "cuda-bindings", "cuda-toolkit")
    }
    assert cuda and not (cuda & mac) and not (cuda & win)
    assert "pywinpty" in win and "pywinpty" not in linux and "appnope" in mac
    assert {"torch", "jupyterlab", "jupyter-server", "ipywidgets"} <= (linux & mac & win)


def test_environment_yml_uses_the_lock_and_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-r requirements.lock" in pip_section
    assert "-e ." in pip_section


def test_pyproject_pins_match_the_lock():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"].startswith(">=3.11")
    lock = _lock()
    for dep in project["dependencies"]:
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*==\s*([^;\s]+)", dep)
        name = re.match(r"^([A-Za-z0-9_.\-]+)", dep).group(1).lower().replace("_", "-")
        assert name in lock, f"{name} is a dependency but not pinned in requirements.lock"
        if m:
            assert lock[name] == m.group(2), (
                f"{name}: pyproject pins {m.group(2)}, lock pins {lock[name]}"
            )


def test_torch_pins():
    lock = _lock()
    assert lock["torch"] == "2.14.1" and lock["torchvision"] == "0.29.1"


def test_makefile_installs_from_the_lock():
    make = (ROOT / "Makefile").read_text()
    assert "-r requirements.lock" in make
    assert (ROOT / ".ci" / "run").read_text().count("make test") == 1


def test_readme_library_snippet_runs_as_written():
    """The README's "Using the library" block, executed on a bundled photo: an AGF map [1, H, W]
    and every method name it points to registered."""
    from visxai.data import load_photo
    from visxai.methods import METHODS

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using the library") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope = {"photo": load_photo("chelsea")}
    exec(compile(code, "README.md", "exec"), scope)
    heatmap, x = scope["heatmap"], scope["x"]
    assert heatmap.shape == (1, *x.shape[-2:]) and bool(heatmap.isfinite().all())
    assert scope["method_names"]() == list(METHODS)
    for name in re.findall(r'get_method\("(\w+)"\)', section):
        assert name in METHODS, name
