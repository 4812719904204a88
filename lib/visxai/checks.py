"""Input validation shared by the methods, the models, the notebooks and the command line.

One place that says what was wrong and what to do. :data:`NOTEBOOK_PARAMETERS` is the one
definition of each notebook's parameters (names, types, ranges; the defaults stay in the
notebook's papermill ``parameters`` cell, and a test checks that both name the same ones):
``python -m visxai reproduce -p NAME VALUE`` checks its parameters with it before any notebook
runs, and each notebook's first code cell after its parameters calls
:func:`check_notebook_parameters` before anything loads.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch

__all__ = [
    "InputError",
    "check_images",
    "check_model_input",
    "Param",
    "NOTEBOOK_PARAMETERS",
    "check_parameters",
    "check_notebook_parameters",
]


class InputError(ValueError, TypeError):
    """Bad input (wrong type, shape, dtype or value range); both a ValueError and a TypeError."""


def _shape_text(ndim: int, channels: int | None) -> str:
    c = str(channels) if channels is not None else "C"
    return {4: f"[B, {c}, H, W]", 3: f"[{c}, H, W]"}.get(ndim, f"{ndim}-D")


def check_images(
    x: object,
    *,
    name: str = "images",
    ndim: int = 4,
    channels: int | None = None,
    value_range: tuple[float, float] | None = None,
    tol: float = 1e-4,
    hint: str = "",
    dtype: torch.dtype | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Check that ``x`` is a float tensor of rank ``ndim`` (with ``channels`` at dim -3 if given)
    whose values lie in ``value_range`` (within ``tol``); return it unchanged.

    ``dtype`` (e.g. the model's ``torch.float32``) is required exactly when given; ``finite``
    rejects NaN and infinite values (an explanation of a NaN image is silently wrong).
    Raises :class:`InputError` whose message names the argument, what was expected, what was
    found, and ``hint`` (what to do).
    """
    want = _shape_text(ndim, channels)
    rgb = " RGB" if channels == 3 else ""
    rng = f" in [{value_range[0]:g}, {value_range[1]:g}]" if value_range else ""
    tail = f"; {hint}" if hint else ""
    if not isinstance(x, torch.Tensor):
        raise InputError(
            f"{name} must be a{rgb} float tensor {want}{rng}, got {type(x).__name__}{tail}"
        )
    if x.dim() != ndim:
        raise InputError(
            f"{name} must be a{rgb} float tensor {want}{rng}, got shape {tuple(x.shape)}{tail}"
        )
    if channels is not None and x.shape[-3] != channels:
        raise InputError(
            f"{name} must have {channels}{' (RGB)' if rgb else ''} channel(s) at dim {ndim - 3} "
            f"({want}), got shape "
            f"{tuple(x.shape)} with {x.shape[-3]}{tail}"
        )
    if not x.is_floating_point():
        scale = " (uint8 images: x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise InputError(f"{name} must be floating point{rng}, got dtype {x.dtype}{scale}{tail}")
    if dtype is not None and x.dtype != dtype:
        raise InputError(
            f"{name} must be {dtype} (the model's dtype), got {x.dtype}: convert with "
            f"x.to({dtype}){tail}"
        )
    if finite and x.numel():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            n_nan = int(torch.isnan(x).sum())
            raise InputError(
                f"{name} has {bad} non-finite value(s) ({n_nan} NaN, {bad - n_nan} infinite) "
                f"of {x.numel()}; an explanation of such an input is meaningless{tail}"
            )
    if value_range is not None and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < value_range[0] - tol or hi > value_range[1] + tol:
            raise InputError(f"{name} must lie{rng}, got values in [{lo:.3g}, {hi:.3g}]{tail}")
    return x


def check_model_input(
    model: torch.nn.Module, x: object, *, name: str = "x", hint: str = ""
) -> torch.Tensor:
    """:func:`check_images` for ``model``'s input: a finite float tensor [B, C, H, W] with the
    input channels of the model's first ``Conv2d`` (if any) and the dtype of its first floating
    parameter (if any; a float64 batch into a float32 model is named, not a raw torch error)."""
    check_images(x, name=name, ndim=4, hint=hint)
    conv = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    return check_images(
        x,
        name=name,
        ndim=4,
        channels=None if conv is None else int(conv.in_channels),
        dtype=None if param is None else param.dtype,
        finite=False,
        hint=hint,
    )


# ----------------------------------------------------------------------------- notebook parameters
@dataclass(frozen=True)
class Param:
    """What one notebook parameter may be: a ``kind`` ("int", "float" (ints too), "str", "bool",
    "list"; "" for ``choices`` only) within ``low`` / ``high`` (open ends when ``low_open`` /
    ``high_open``), or one of ``choices``; ``pattern`` (a full-match regex) for strings,
    ``item`` for a list's items (a non-empty list)."""

    kind: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    pattern: str = ""
    item: Param | None = None

    def describe(self) -> str:
        """E.g. "float in (0, 1)", "int >= 1", "one of 'offline', 'paper'"."""
        parts = [repr(c) for c in self.choices]
        if self.kind:
            rng = ""
            if self.low is not None and self.high is not None:
                lo, hi = "(["[not self.low_open], ")]"[not self.high_open]
                rng = f" in {lo}{self.low:g}, {self.high:g}{hi}"
            elif self.low is not None:
                rng = f" {'>' if self.low_open else '>='} {self.low:g}"
            elif self.high is not None:
                rng = f" {'<' if self.high_open else '<='} {self.high:g}"
            if self.pattern:
                rng += f" matching {self.pattern}"
            kind = f"list of {self.item.describe()}" if self.kind == "list" and self.item else ""
            parts.append((kind or self.kind) + rng)
        if len(parts) == 1:
            return parts[0]
        return (
            "one of " + ", ".join(parts)
            if not self.kind
            else ", ".join(parts[:-1]) + " or a " + parts[-1]
        )

    def accepts(self, value: object) -> bool:
        """Whether ``value`` is allowed."""
        if any(value == c and type(value) is type(c) for c in self.choices):
            return True
        ok_type = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "str": isinstance(value, str),
            "bool": isinstance(value, bool),
            "list": isinstance(value, (list, tuple)),
        }.get(self.kind, False)
        if not ok_type:
            return False
        if self.kind == "list":
            return bool(value) and (self.item is None or all(self.item.accepts(v) for v in value))
        if self.kind in ("int", "float"):
            v = float(value)  # type: ignore[arg-type]
            if v != v:  # NaN
                return False
            if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
                return False
            if self.high is not None and (v > self.high or (self.high_open and v == self.high)):
                return False
        if self.pattern and not re.fullmatch(self.pattern, str(value)):
            return False
        return True

    @classmethod
    def like(cls, default: object) -> Param:
        """The type-only spec of a parameter known by its default alone (None: anything)."""
        if default is None:
            return _ANY
        kind = {bool: "bool", int: "int", float: "float", str: "str", list: "list"}.get(
            type(default), ""
        )
        return cls(kind=kind) if kind else _ANY


class _Anything(Param):
    def describe(self) -> str:
        return "any value"

    def accepts(self, value: object) -> bool:
        return True


_ANY = _Anything()

_PROFILE = Param(choices=("offline", "paper"))
_DEVICE = Param("str", pattern=r"auto|cpu|mps|cuda(:\d+)?")
_SEED = Param("int", low=0)
_COUNT = Param("int", low=1)
_POSITIVE = Param("float", low=0, low_open=True)
_NONNEGATIVE = Param("float", low=0)
_COMMON = {"profile": _PROFILE, "device": _DEVICE, "seed": _SEED}

NOTEBOOK_PARAMETERS: dict[str, dict[str, Param]] = {
    "01_pixel_invariance": {
        **_COMMON,
        "n_augments": _COUNT,
        "alpha": _NONNEGATIVE,
        "lam": _NONNEGATIVE,
        "n_components": _COUNT,
        "schedule": Param(choices=("converge", "paper")),
        "epochs": _COUNT,
        "lr": _POSITIVE,
        "n_transforms": _COUNT,
        "n_seeds": _COUNT,
        "margin": _NONNEGATIVE,
        "paper_tol": _POSITIVE,
        "workers": Param("int", low=1, choices=(None,)),
    },
    "02_attribution_guided_factorization": {
        **_COMMON,
        "ig_steps": _COUNT,
        "smoothgrad_samples": _COUNT,
        "gshap_samples": _COUNT,
        "mp_iterations": _COUNT,
    },
    "03_transformation_invariant_optimization": {
        **_COMMON,
        "angle": Param("float", low=0, high=360, low_open=True),
        "n_rotations": Param("int", low=0),
        "q_target": Param("float", low=0, high=1, low_open=True, high_open=True),
        "lr": _POSITIVE,
        "max_steps_per_round": _COUNT,
        "final_optimize": Param("bool"),
        "objective": Param(choices=("log_prob", "logit")),
        "step_rule": Param(choices=("normalized", "sign")),
        "interpolation": Param(choices=("bilinear", "nearest")),
        "corner_fill": Param("float", low=0, high=255),
        "noise_amplitude": _NONNEGATIVE,
        "gray_levels": Param("list", item=Param("int", low=0, high=255)),
        "entropy_window": _COUNT,
        "workers": Param("int", low=1, choices=(None,)),
    },
    "04_fill_in_the_blanks": {
        **_COMMON,
        "mask_ratio": Param("float", low=0, high=1, low_open=True, high_open=True),
        "patch_size": _COUNT,
        "k_masks": _COUNT,
        "gamma": _POSITIVE,
        "min_correct": _COUNT,
        "binarize": Param("float", low=0, high=1, high_open=True, choices=("otsu", "none", None)),
        "progressive_target": Param(choices=("first", "predicted", "label")),
        "bfgs_iterations": Param("int", low=0),
        "workers": Param("int", low=1, choices=(None,)),
    },
}


def check_parameters(
    notebook: str, params: Mapping[str, object], spec: Mapping[str, Param] | None = None
) -> None:
    """Check ``params`` (some of notebook ``notebook``'s parameters, by name) against ``spec``
    (default: :data:`NOTEBOOK_PARAMETERS` ``[notebook]``).

    Raises :class:`InputError` naming an unknown name (with the closest known one and the list
    of the notebook's parameters) or a value of the wrong type or out of range.
    """
    if spec is None:
        if notebook not in NOTEBOOK_PARAMETERS:
            raise InputError(
                f"no parameter spec for notebook {notebook!r}; known: "
                f"{', '.join(NOTEBOOK_PARAMETERS)}"
            )
        spec = NOTEBOOK_PARAMETERS[notebook]
    unknown = sorted(set(params) - set(spec))
    if unknown:
        close = {u: difflib.get_close_matches(u, list(spec), n=1) for u in unknown}
        hints = "".join(f"; {u!r}: did you mean {c[0]!r}?" for u, c in close.items() if c)
        listing = ", ".join(f"{k} ({p.describe()})" for k, p in spec.items())
        raise InputError(f"{notebook} has no parameter {unknown}; its parameters: {listing}{hints}")
    for name, value in params.items():
        if not spec[name].accepts(value):
            raise InputError(
                f"{notebook} parameter {name} is {spec[name].describe()}, got {value!r}"
            )


# what IPython itself puts into a notebook's namespace (besides names starting with "_")
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
_VALUE_TYPES = (bool, int, float, str, list, tuple, dict, type(None))


def _injected_names(namespace: Mapping[str, object]) -> list[str] | None:
    """The names assigned in the last papermill ``injected-parameters`` cell run in this kernel
    (its source starts with "# Parameters"; IPython's input history ``In``), None without one."""
    import ast

    history = namespace.get("In")
    if not isinstance(history, list):
        return None
    cell = next(
        (c for c in reversed(history) if isinstance(c, str) and c.startswith("# Parameters\n")),
        None,
    )
    if cell is None:
        return None
    try:
        tree = ast.parse(cell)
    except SyntaxError:
        return None
    return [
        t.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    ]


def check_notebook_parameters(notebook: str, namespace: Mapping[str, object]) -> None:
    """A notebook's check of its parameters, called as
    ``check_notebook_parameters(STEM, globals())`` in the first code cell after its parameters
    (before anything is imported or loaded there).

    Every parameter of :data:`NOTEBOOK_PARAMETERS` ``[notebook]`` must be defined and valid. A
    name that papermill injected (a misspelling: papermill only warns) and the notebook does not
    know raises :class:`InputError`, which lists the parameters the notebook knows. In a kernel
    the injected names are read from the ``injected-parameters`` cell in the input history (so
    re-running the cell later in a session is fine); elsewhere (``exec``) any plain value
    (number, string, list, dict, None) in ``namespace`` that is no parameter counts as injected.
    """
    spec = NOTEBOOK_PARAMETERS.get(notebook)
    if spec is None:
        check_parameters(notebook, {})  # raises: no spec
        return
    missing = [name for name in spec if name not in namespace]
    if missing:
        raise InputError(
            f"{notebook}: parameter(s) {missing} are not defined: run the parameters cell first"
        )
    injected = _injected_names(namespace)
    if injected is None:
        hidden: set[str] = set(_IPYTHON_NAMES)
        try:
            from IPython import get_ipython

            hidden |= set(getattr(get_ipython(), "user_ns_hidden", {}) or {})
        except ImportError:
            pass
        injected = [
            name
            for name, value in namespace.items()
            if not name.startswith("_") and name not in hidden and isinstance(value, _VALUE_TYPES)
        ]
    values = {name: namespace[name] for name in spec}
    values.update({name: namespace.get(name) for name in injected if name not in spec})
    check_parameters(notebook, values, spec)
