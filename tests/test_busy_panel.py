"""visxai.plotting.busy_panel: the slider panels of notebooks 01, 03 and 04 show that they are
working (disabled controls and a "computing" status while the callback runs) and name the values
of the figure on display; no browser needed (ipywidgets objects and their callbacks)."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

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
    assert seen[-1][:4] == (0.5, 1, True, True)
    assert seen[-1][4].startswith("<b>computing</b> λ = 0.5, V = 1 ...<style>")
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


# ------------------------------------------------------------- the notebooks' panels (01, 03, 04)
def _panel_status(panel) -> str:
    return _status(panel).value


def test_pixel_invariance_panel_refits_at_the_papers_values():
    from test_pixel_invariance import RegionModel, _image

    from visxai.evaluation import pixel_invariance as pinv
    from visxai.methods.pixel_invariance import PixelInvariance

    pi = PixelInvariance(RegionModel(), mean=(0.5,) * 3, std=(0.25,) * 3, n_augments=40)
    pi = pi.replace(surrogate_size=None, epochs=5, device="cpu")
    case = pinv.InvarianceCase("tiny", {}, {"a": _image()}, ("a",), 16, None, 40, "tiny")
    panel = pinv.refit_panel(pi, case)
    photo, alpha, lam, v = panel.kwargs_widgets
    assert [w.description for w in (photo, alpha, lam, v)] == ["photo", "α", "λ", "V"]
    assert (alpha.value, lam.value, v.value) == (2.0, 0.2, 1)  # the paper's, exactly
    assert _panel_status(panel) == "showing photo = a, α = 2, λ = 0.2, V = 1"
    lam.value = 0.5
    assert _panel_status(panel) == "showing photo = a, α = 2, λ = 0.5, V = 1"
    fig = pinv.refit_figure(pi, case, "a", 1.0, 0.05, 2)
    assert fig.get_suptitle() == "α = 1, λ = 0.05, V = 2"
    plt.close(fig)
    with pytest.raises(ValueError, match="slider value"):
        pinv.refit_panel(pi, case, lam=0.199526)


def test_tio_panels_gray_level_and_reoptimise_button():
    from test_tio import CLS, _fake_result

    from visxai.evaluation import tio

    levels = [0, 10, 60, 120, 250]
    jobs = tio.ReplicateJobs.build(CLS, levels, None, 2, 4)
    images = torch.rand((len(jobs), 3, 24, 24), generator=torch.Generator().manual_seed(0)) * 255
    st = tio.entropy_study(jobs, _fake_result(images), window=5)
    panel = tio.level_panel(st, images)
    (gray,) = panel.kwargs_widgets
    assert gray.description == "gray level" and list(gray.options) == levels
    assert _panel_status(panel) == "showing gray level = 60"
    gray.value = 120
    assert _panel_status(panel) == "showing gray level = 120"
    with pytest.raises(ValueError, match="not in the sweep"):
        tio.level_panel(st, images, value=55)
    rerun = tio.rerun_panel(None, 24, CLS)  # nothing runs until the button is pressed
    assert rerun.manual_button.description == "re-optimise with these settings"
    g, step, target = rerun.kwargs_widgets
    assert g.value == 60 and 10.0 in step.options and 255 in g.options
    assert all(360 % s == 0 for s in step.options)  # whole revolutions
    with pytest.raises(ValueError, match="step"):
        tio.rerun_panel(None, 24, CLS, step=7.0)


def test_fill_panel_hits_the_papers_ratio_and_names_its_values():
    from test_fill_blanks import _tiny_study

    from visxai.evaluation import fill_blanks as fib

    st = _tiny_study()
    panel = fib.fill_panel(st, 0)
    index, ratio, patch, seed = panel.kwargs_widgets
    assert [w.description for w in (index, ratio, patch, seed)] == [
        "image", "η", "patch", "mask seed"
    ]  # fmt: skip
    assert ratio.value == 0.25 and {0.1, 0.25, 0.5, 0.75} <= set(ratio.options)
    assert patch.value == 2
    ratio.value = 0.5
    assert _panel_status(panel) == "showing image = 0, η = 0.5, patch = 2, mask seed = 0"
    fig = fib.plot_fill_panel(st, 0, 0.5, 4, 3)
    assert fig.get_suptitle() == "image = 0, η = 0.5, patch = 4, mask seed = 3"
    plt.close(fig)
