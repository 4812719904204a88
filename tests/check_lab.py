"""JupyterLab as a user meets it: `make lab`, headless Chromium, slider panels before any cell runs.

Starts `make lab` (JupyterLab on notebooks/, on a free local port, with a throw-away settings
folder that renders every cell), opens each notebook that has a slider panel in headless
Chromium, and checks, without running a cell, that the panel is drawn from the saved widget
state: an interact panel with its sliders and its last figure. A screenshot of each panel is
written to $VISXAI_LAB_SHOTS (default: a temporary folder).

Run: `python tests/check_lab.py` (`make check-lab`). Needs Debian's `chromium` and
`chromium-driver`; without them it prints how to install them and exits 0 (skipped).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PANELS = (
    "01_pixel_invariance",
    "03_transformation_invariant_optimization",
    "04_fill_in_the_blanks",
)
TOKEN = "visxai-lab-check"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(folder: Path) -> None:
    """Render every cell (no windowing, so off-screen panels exist) and fetch no news."""
    nb = folder / "@jupyterlab" / "notebook-extension"
    nb.mkdir(parents=True)
    (nb / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    ap = folder / "@jupyterlab" / "apputils-extension"
    ap.mkdir(parents=True)
    (ap / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"`make lab` exited with {proc.returncode} before serving")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    raise RuntimeError(f"`make lab` did not serve on port {port} within {timeout:.0f} s")


PANEL_JS = """
const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
if (!nb) return {panels: [], as_text: 0};
const out = [];
for (const p of nb.querySelectorAll('.widget-interact')) {
  const cell = p.closest('.jp-Cell');
  out.push({sliders: p.querySelectorAll('.widget-slider, .widget-hslider').length,
            dropdowns: p.querySelectorAll('select').length,
            images: cell ? cell.querySelectorAll('.jp-OutputArea-output img').length : 0});
}
const text = Array.from(nb.querySelectorAll('.jp-OutputArea-output pre'))
  .filter(e => e.textContent.startsWith('interactive(')).length;
return {panels: out, as_text: text};
"""


def check(driver, port: int, stem: str, shots: Path, timeout: float = 120) -> tuple[bool, str]:
    # a fresh workspace per notebook: no tab of another notebook in the page
    driver.get(
        f"http://127.0.0.1:{port}/lab/workspaces/check-{stem[:2]}/tree/{stem}.ipynb?reset&token={TOKEN}"
    )
    t0, state = time.time(), {}
    while time.time() - t0 < timeout:
        time.sleep(3)
        state = driver.execute_script(PANEL_JS)
        if any(p["images"] and (p["sliders"] or p["dropdowns"]) for p in state["panels"]):
            break
    panels = driver.find_elements(
        "css selector", ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-interact"
    )
    if panels:
        driver.execute_script("arguments[0].scrollIntoView();", panels[-1])
        time.sleep(1)
    driver.save_screenshot(str(shots / f"{stem}.png"))
    ok = any(p["images"] and (p["sliders"] or p["dropdowns"]) for p in state.get("panels", []))
    return ok, f"{stem}: {state}"


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        print(
            "check-lab: skipped: needs Chromium and its driver "
            "(Debian/Ubuntu: `apt-get install chromium chromium-driver`)"
        )
        return 0
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    shots = Path(os.environ.get("VISXAI_LAB_SHOTS") or tempfile.mkdtemp(prefix="visxai-lab-"))
    shots.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        _settings(Path(tmp) / "settings")
        lab_args = (
            f"--no-browser --port={port} --IdentityProvider.token={TOKEN} "
            f"--LabApp.user_settings_dir={Path(tmp) / 'settings'}"
        )
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(Path(tmp) / "runtime"))
        proc = subprocess.Popen(
            ["make", "-s", "lab", f"LAB_ARGS={lab_args}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(tmp) / "lab.log", "w"),
            start_new_session=True,
        )
        results = []
        try:
            _wait_for_port(port, proc)
            opts = Options()
            for a in (
                "--headless=new",
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--window-size=1400,1800",
            ):
                opts.add_argument(a)
            opts.binary_location = chromium
            driver = webdriver.Chrome(options=opts, service=Service(driver_bin))
            try:
                for stem in PANELS:
                    results.append(check(driver, port, stem, shots))
            finally:
                driver.quit()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    for ok, what in results:
        print(f"check-lab: {'ok' if ok else 'FAILED'}: {what}")
    print(f"check-lab: screenshots in {shots}")
    return 0 if results and all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
