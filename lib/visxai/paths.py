"""Where things live: the repository root, the figures folder, the data cache, checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The repository root (``VISXAI_ROOT`` if set, else the folder holding pyproject.toml).

    Falls back to the current working directory for an installed, non-editable package.
    """
    env = os.environ.get("VISXAI_ROOT")
    if env:
        return Path(env).resolve()
    for start in (_PACKAGE_DIR, Path.cwd().resolve()):
        for parent in (start, *start.parents):
            if (parent / "pyproject.toml").is_file() and (parent / "lib" / "visxai").is_dir():
                return parent
    return Path.cwd().resolve()


def figures_dir(notebook: str | None = None) -> Path:
    """``figures/`` (or ``VISXAI_FIGURES``), or its sub-folder for one notebook stem; created."""
    base = Path(os.environ.get("VISXAI_FIGURES", repo_root() / "figures"))
    path = base / notebook if notebook else base
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """The artefact cache: ``VISXAI_DATA`` or ``~/.cache/visxai``; created."""
    path = Path(os.environ.get("VISXAI_DATA", Path.home() / ".cache" / "visxai")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoints_dir() -> Path:
    """Committed small checkpoints (``checkpoints/`` in the repository)."""
    return repo_root() / "checkpoints"


def manifests_dir() -> Path:
    """The YAML manifests (``data_manifests/`` in the repository)."""
    return repo_root() / "data_manifests"
