"""visxai.plotting.busy_panel: the slider panels of notebooks 01, 03 and 04 show that they are
working (disabled controls and a "computing" status while the callback runs) and name the values
of the figure on display; no browser needed (ipywidgets objects and their callbacks)."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from visxai.plotting import busy_panel, describe_values  # noqa: E402


def _status(panel) -> widgets.HTML:
    (status,) = [c for c in panel.children if "visxai-status" in c._dom_classes]
    return status


def test_busy_state_while_the_callback_runs_and_the_shown_values_after():
    seen = []
    lam = widgets.SelectionSlider(options=[0.1, 0.2, 0.5], value=0.2, description="λ")
    v = widgets.IntSlider(1, 1, 10, description="V")

    def show(lam: float, v: int) -> None:
        seen.append((lam, v, lam_w.disabled, v_w.disabled, _status(ref[0]).value if ref else ""))

    lam_w, v_w, ref = lam, v, []
    panel = busy_panel(show, {"lam": lam, "v": v})
    ref.append(panel)
    status = _status(panel)
    # built: the callback ran once with the initial values, controls disabled meanwhile
    assert seen[0][:4] == (0.2, 1, True, True)
    assert status.value == "showing λ = 0.2, V = 1"
    assert not lam.disabled and not v.disabled
    assert lam.continuous_update is False and v.continuous_update is False
    lam.value = 0.5  # the user moves a slider
    assert seen[-1] == (0.5, 1, True, True, "<b>computing</b> λ = 0.5, V = 1 ...")
    assert status.value == "showing λ = 0.5, V = 1"
    assert not lam.disabled
    # the status sits between the controls and the figure
    assert panel.children.index(status) == len(panel.children) - 2


def test_a_returned_figure_is_shown_and_closed_and_a_failure_is_reported():
    def draw(a: int):
        if a == 3:
            raise RuntimeError("boom")
        fig, ax = plt.subplots()
        ax.set_title(f"a = {a}")
        return fig

    a = widgets.IntSlider(1, 0, 5, description="a")
    n_open = len(plt.get_fignums())
    panel = busy_panel(draw, {"a": a})
    assert len(plt.get_fignums()) == n_open  # shown, then closed
    a.value = 3  # interactive logs the exception (no IPython here)
    assert _status(panel).value.startswith("<b>failed</b> a = 3")
    assert not a.disabled  # re-enabled after a failure
    a.value = 2
    assert _status(panel).value == "showing a = 2"


def test_manual_panel_waits_for_its_labelled_button():
    calls = []
    g = widgets.SelectionSlider(options=[0, 10, 60], value=60, description="gray level")
    panel = busy_panel(lambda gray: calls.append(gray), {"gray": g}, manual_name="re-optimise")
    assert panel.manual_button.description == "re-optimise"
    assert calls == [] and "re-optimise" in _status(panel).value
    g.value = 10
    assert calls == []  # nothing runs until the button is pressed
    panel.manual_button.click()
    assert calls == [10] and _status(panel).value == "showing gray level = 10"
    assert not panel.manual_button.disabled


def test_bad_controls_raise():
    with pytest.raises(ValueError, match="at least one control"):
        busy_panel(lambda: None, {})
    with pytest.raises(TypeError, match="not an ipywidgets value widget"):
        busy_panel(lambda a: None, {"a": 0.5})


def test_describe_values():
    assert describe_values({"α": 2.0, "λ": 0.2, "V": 1, "image": "cat"}) == (
        "α = 2, λ = 0.2, V = 1, image = cat"
    )
