"""JupyterLab as a user meets it: `make lab`, headless Chromium, the slider panels of notebooks
01, 03 and 04 before any cell runs, then live: every slider redraws with a visible busy state.

Starts `make lab` (JupyterLab on notebooks/, on a free local port, with a throw-away settings
folder that renders every cell and never autosaves, and figures written to a temporary
VISXAI_FIGURES), and for each notebook with a panel, in headless Chromium:

1. **Saved panel.** Without running a cell, the panel is drawn from the saved widget state: an
   interact panel with its sliders and its last figure.
2. **Live panel.** The notebook's kernel (started by JupyterLab) runs only the code cells the
   panel needs: the cells that define the names the panel cell uses, transitively, found by
   reading the cells' Python (`needed_cells`), with the notebook's own parameters. Then the panel
   cell is run in the page (Ctrl+Enter, as a user would), and every slider of its panels is moved
   one step with the keyboard (and, on the re-optimise panel of 03, its button pressed). A
   MutationObserver records what the page shows during the update: the check passes when the
   status line said "computing ..." while the controls were disabled, and then "showing ..." with
   a new figure.

Why not Run All: a full offline run takes 3-18 min per notebook on a CI CPU (Table I of 01 and
04, the gray-level sweep of 03), far above this check's budget (a few minutes in all); the panels
need only their set-up cells (seconds), except 03's, whose gray-level panel browses the sweep.
For 03 the check runs the notebook's own sweep cells on four levels (0, 10, 60, 120; the
black-start rise needs 0 and 10), two replicates of the soccer-ball start and one of the other
classes (:data:`LIVE_OVERRIDES`, run just before the sweep cell): the panel is the notebook's
own, on a smaller sweep. The live part takes about 2-4 minutes.

Screenshots of each panel (saved; during an update, when one is caught; live) are written to
$VISXAI_LAB_SHOTS (default: a temporary folder). `--saved-only` skips the live part.

Run: `python tests/check_lab.py` (`make check-lab`). Needs Debian's `chromium` and
`chromium-driver`; without them it prints how to install them and exits 0 (skipped). After a
change to a panel, the committed notebooks must be re-executed (`make notebooks`) for the saved
part to show the new panel.
"""

from __future__ import annotations

import ast
import hashlib
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
#: the panel cell of each notebook: the first code cell containing this text
PANEL_CELL = {
    "01_pixel_invariance": "pinv.refit_panel(",
    "03_transformation_invariant_optimization": "tio.level_panel(",
    "04_fill_in_the_blanks": "fib.fill_panel(",
}
#: code run on the kernel just before the needed cell that contains the key (see the docstring)
LIVE_OVERRIDES = {
    "03_transformation_invariant_optimization": {
        "tio.ReplicateJobs.build(": (
            "import dataclasses\n"
            "gray_levels = [0, 10, 60, 120]  # check_lab: a four-level sweep (0 and 10: the rise)\n"
            "R, R_SWEEP = 1, 2  # replicates per start, of the soccer-ball sweep\n"
            "S = dataclasses.replace(S, fig2_levels=(60,))"
        )
    },
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(folder: Path) -> None:
    """Render every cell (no windowing, so off-screen panels exist), never autosave (a run cell
    must not rewrite the committed notebook) and fetch no news."""
    nb = folder / "@jupyterlab" / "notebook-extension"
    nb.mkdir(parents=True)
    (nb / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    dm = folder / "@jupyterlab" / "docmanager-extension"
    dm.mkdir(parents=True)
    (dm / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": False}))
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


# ------------------------------------------------------------------------------------ live
def _python(src: str) -> ast.Module | None:
    """A code cell's Python (IPython magics transformed away); None if it does not parse."""
    try:
        return ast.parse(src)
    except SyntaxError:
        from IPython.core.inputtransformer2 import TransformerManager

        try:
            return ast.parse(TransformerManager().transform_cell(src))
        except SyntaxError:
            return None


def _defs_uses(tree: ast.Module) -> tuple[set[str], set[str]]:
    defs, uses = set(), set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            (defs if isinstance(n.ctx, ast.Store) else uses).add(n.id)
        elif isinstance(n, ast.Import | ast.ImportFrom):
            defs |= {(a.asname or a.name).split(".")[0] for a in n.names}
        elif isinstance(n, ast.FunctionDef | ast.ClassDef):
            defs.add(n.name)
    return defs, uses


def needed_cells(cells: list[dict], target: int) -> list[int]:
    """The code cells before ``target`` that define a name ``target`` uses, transitively (the
    last definition before each use), in notebook order."""
    parsed = {}
    for i, c in enumerate(cells[: target + 1]):
        tree = _python("".join(c["source"])) if c["cell_type"] == "code" else None
        if tree is not None:
            parsed[i] = _defs_uses(tree)
    if target not in parsed:
        raise ValueError(f"cell {target} is not a parsable code cell")
    need, todo = set(), [target]
    while todo:
        j = todo.pop()
        for name in parsed[j][1]:
            src = max((i for i in parsed if i < j and name in parsed[i][0]), default=None)
            if src is not None and src not in need:
                need.add(src)
                todo.append(src)
    return sorted(need)


def _run_on_kernel(kc, code: str, what: str, timeout: float = 600) -> None:
    errors = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "error":
            errors.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook, store_history=False)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"{what} failed on the kernel:\n" + "\n".join(errors)[-3000:])


def _kernel_id(port: int, stem: str, timeout: float = 120) -> str:
    import requests

    t0 = time.time()
    while time.time() - t0 < timeout:
        sessions = requests.get(
            f"http://127.0.0.1:{port}/api/sessions", headers={"Authorization": f"token {TOKEN}"}
        ).json()
        for s in sessions:
            if s["path"].endswith(f"{stem}.ipynb") and s.get("kernel"):
                return s["kernel"]["id"]
        time.sleep(2)
    raise RuntimeError(f"{stem}: JupyterLab started no kernel within {timeout:.0f} s")


LIVE_PANELS_JS = """
const [idx, mark] = arguments;
const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
const cell = nb.querySelectorAll('.jp-Cell')[idx];
const panels = Array.from(cell.querySelectorAll('.widget-interact'));
if (mark) { panels.forEach(p => p.setAttribute('data-visxai-old', '1')); return []; }
return panels.filter(p => !p.hasAttribute('data-visxai-old'));
"""

OBSERVE_JS = """
const [panel] = arguments;
const status = () => {
  const s = panel.querySelector('.visxai-status'); return s ? s.textContent : ''; };
const img = () => { const i = panel.querySelector('.widget-output img');
                    return i ? i.src.length + ':' + i.src.slice(-64) : ''; };
window.__seen = [];
const rec = () => window.__seen.push({s: status(), img: img(),
  disabled: panel.querySelectorAll('[disabled], .mod-disabled, button:disabled').length});
rec();
if (window.__obs) window.__obs.disconnect();
window.__obs = new MutationObserver(rec);
window.__obs.observe(panel,
  {subtree: true, childList: true, attributes: true, characterData: true});
"""


def _move(
    driver, panel, slider, manual: bool, timeout: float, busy_shot: Path | None = None
) -> tuple[bool, str]:
    """Move ``slider`` one step (keyboard), press the button of a manual panel, and wait for the
    redraw; True when a busy state (status "computing", controls disabled) was shown and then
    "showing ..." with a new figure."""
    from selenium.webdriver.common.keys import Keys

    handle = slider.find_element("css selector", ".noUi-handle")
    label = slider.find_element("css selector", ".widget-label").text
    at_end = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
    driver.execute_script(OBSERVE_JS, panel)
    before = driver.execute_script("return window.__seen[0];")
    t0 = time.time()
    handle.send_keys(Keys.ARROW_LEFT if at_end else Keys.ARROW_RIGHT)
    if manual:
        time.sleep(0.5)
        panel.find_element("css selector", "button").click()
    last = before
    while time.time() - t0 < timeout:
        time.sleep(0.3)
        last = driver.execute_script("return window.__seen[window.__seen.length - 1];")
        if busy_shot and last["s"].startswith("computing") and not busy_shot.exists():
            driver.save_screenshot(str(busy_shot))  # what a user sees during an update
        if last["s"].startswith("showing") and last["s"] != before["s"] and not last["disabled"]:
            break
    seen = driver.execute_script("return window.__seen;")
    busy = any(e["s"].startswith("computing") and e["disabled"] for e in seen)
    redrawn = last["s"].startswith("showing") and last["img"] and last["img"] != before["img"]
    ok = bool(busy and redrawn)
    return ok, (
        f"{label}: {'ok' if ok else 'FAILED'} in {time.time() - t0:.1f} s "
        f"(busy state seen: {busy}, redrawn: {bool(redrawn)}; status: {last['s']!r})"
    )


def check_live(
    driver, port: int, stem: str, runtime: Path, shots: Path, timeout: float = 240
) -> tuple[bool, str]:
    """Run the cells the panel needs on the notebook's kernel, run the panel cell in the page,
    move every slider (see the module docstring)."""
    import requests
    from jupyter_client import BlockingKernelClient
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    cells = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
    target = next(
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "code" and PANEL_CELL[stem] in "".join(c["source"])
    )
    need = needed_cells(cells, target)
    overrides = dict(LIVE_OVERRIDES.get(stem, {}))
    kid = _kernel_id(port, stem)
    kc = BlockingKernelClient(connection_file=str(runtime / f"kernel-{kid}.json"))
    kc.load_connection_file()
    kc.start_channels()
    lines, t0 = [], time.time()
    try:
        kc.wait_for_ready(timeout=120)
        for i in need:
            src = "".join(cells[i]["source"])
            for marker in [m for m in overrides if m in src]:
                _run_on_kernel(kc, overrides.pop(marker), f"{stem}: the override before cell {i}")
            _run_on_kernel(kc, src, f"{stem}: cell {i}")
        if overrides:
            raise RuntimeError(f"{stem}: no needed cell contains {list(overrides)} (stale check)")
        lines.append(f"cells {need} run on the kernel in {time.time() - t0:.0f} s")
        # the panel cell, run in the page as a user would
        driver.execute_script(LIVE_PANELS_JS, target, True)
        prompt = driver.execute_script(
            "const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');"
            "const c = nb.querySelectorAll('.jp-Cell')[arguments[0]];"
            "c.scrollIntoView(); return c.querySelector('.jp-InputPrompt');",
            target,
        )
        prompt.click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(
            Keys.CONTROL
        ).perform()
        panels, t1 = [], time.time()
        while time.time() - t1 < timeout:
            time.sleep(1)
            panels = driver.execute_script(LIVE_PANELS_JS, target, False)
            statuses = [p.find_elements("css selector", ".visxai-status") for p in panels]
            if panels and all(s and s[0].text.startswith(("showing", "press")) for s in statuses):
                break
        if not panels:
            return False, f"{stem} live: the panel cell drew no panel; " + "; ".join(lines)
        ok = True
        for panel in panels:
            manual = bool(panel.find_elements("css selector", "button"))
            for slider in panel.find_elements("css selector", ".widget-slider, .widget-hslider"):
                driver.execute_script("arguments[0].scrollIntoView();", panel)
                shot = shots / f"{stem}-busy.png"
                good, line = _move(driver, panel, slider, manual, timeout, shot)
                ok &= good
                lines.append(line)
        driver.save_screenshot(str(shots / f"{stem}-live.png"))
        return ok, f"{stem} live: " + "; ".join(lines)
    finally:
        kc.stop_channels()
        requests.delete(
            f"http://127.0.0.1:{port}/api/kernels/{kid}",
            headers={"Authorization": f"token {TOKEN}"},
        )


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.ipynb")}


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

    live = "--saved-only" not in sys.argv[1:]
    before = _digest(ROOT / "notebooks")
    shots = Path(os.environ.get("VISXAI_LAB_SHOTS") or tempfile.mkdtemp(prefix="visxai-lab-"))
    shots.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        _settings(Path(tmp) / "settings")
        lab_args = (
            f"--no-browser --port={port} --IdentityProvider.token={TOKEN} "
            f"--LabApp.user_settings_dir={Path(tmp) / 'settings'}"
        )
        runtime = Path(tmp) / "runtime"
        env = dict(
            os.environ, JUPYTER_RUNTIME_DIR=str(runtime), VISXAI_FIGURES=str(Path(tmp) / "figures")
        )
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
                    if live:
                        try:
                            results.append(check_live(driver, port, stem, runtime, shots))
                        except Exception as err:  # noqa: BLE001 - reported as a failed check
                            results.append((False, f"{stem} live: {type(err).__name__}: {err}"))
            finally:
                driver.quit()
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    if _digest(ROOT / "notebooks") != before:
        results.append((False, "a committed notebook changed during the check (autosave?)"))
    for ok, what in results:
        print(f"check-lab: {'ok' if ok else 'FAILED'}: {what}")
    print(f"check-lab: screenshots in {shots}")
    return 0 if results and all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
