"""BibTeX of the four papers this companion reproduces (printed by each notebook) and of itself."""

from __future__ import annotations

BIBTEX: dict[str, str] = {
    "01_pixel_invariance": """@misc{sammani_pixel_invariance,
  title  = {Visualizing Invariant Features in Vision Models},
  author = {Sammani, Fawaz and Joukovsky, Boris and Deligiannis, Nikos},
  note   = {Vrije Universiteit Brussel and imec; code: https://github.com/fawazsammani/explain-cl}
}""",
    "02_attribution_guided_factorization": """@inproceedings{gur2021agf,
  title     = {Visualization of Supervised and Self-Supervised Neural Networks via Attribution Guided Factorization},
  author    = {Gur, Shir and Ali, Ameen and Wolf, Lior},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  year      = {2021}
}""",
    "03_transformation_invariant_optimization": """@misc{li2021tio,
  title         = {Towards interpreting computer vision based on transformation invariant optimization},
  author        = {Li, Chen and Jiang, Jinzhe and Zhang, Xin and Zhao, Yaqian and Jiang, Dongdong},
  year          = {2021},
  eprint        = {2106.09982},
  archivePrefix = {arXiv},
  primaryClass  = {cs.CV}
}""",
    "04_fill_in_the_blanks": """@article{deelaka2024fill,
  title   = {Fill in the blanks: Rethinking Interpretability in vision},
  author  = {Deelaka, Pathirage N. and Wickremasinghe, Tharindu and De Silva, Devin Y. and Gajaweera, Lisara N.},
  journal = {arXiv preprint arXiv:2411.10273},
  year    = {2024}
}""",
}

COMPANION = """@software{visxai,
  title = {visxai: a reproducible companion for Pixel Invariance, AGF, TIO and Fill in the Blanks},
  year  = {2026},
  note  = {See CITATION.cff}
}"""


def bibtex(notebook: str) -> str:
    """The paper's BibTeX for a notebook stem, followed by this companion's."""
    try:
        return BIBTEX[notebook] + "\n\n" + COMPANION
    except KeyError as err:
        raise KeyError(f"no BibTeX for {notebook!r}; known: {sorted(BIBTEX)}") from err
