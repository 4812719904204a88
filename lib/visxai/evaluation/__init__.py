"""Each notebook's protocol, on top of the methods: the notebook configures, calls these, plots
and explains; notebook 02's protocols are also the torchrun code path (:mod:`visxai.distributed`).

* :mod:`.pixel_invariance`: notebook 01's case, Table I run and report with its verdicts;
* notebook 02 / AGF (Gur et al., AAAI 2021):
  :mod:`.protocols` (explain in chunks, negative perturbation for Table 2 / Fig. 3, segmentation
  for Table 3, pooled ratios and paired comparisons with their verdicts), :mod:`.cases`
  (:func:`eval_case`: model, images, targets, masks of one protocol's case), :mod:`.agf_tables`
  (the tables and "AGF first" claims), :mod:`.agf_study` (settings per profile, the other runs,
  the scorecard rows) and :mod:`.agf_figures`;
* :mod:`.tio`: notebook 03's settings, replicate jobs, studies and figures;
* :mod:`.fill_blanks`: notebook 04's protocols (profiles, Table 1 over mask seeds, figures).

``eval_data`` (the data sets read by index) lives in :mod:`visxai.data.eval_sets` and is
re-exported here.
"""

from ..data.eval_sets import eval_data
from .cases import EvalCase, eval_case, reference_bank
from .protocols import (
    Comparison,
    ExplainFn,
    combine_claims,
    compare_paired,
    explain_batched,
    explain_predicted_and_target,
    method_fn,
    multilabel_segmentation_eval,
    negative_perturbation_both,
    negative_perturbation_eval,
    paired_pooled_difference,
    pooled_estimate,
    predict,
    segmentation_eval,
    timed,
)

__all__ = [
    "ExplainFn",
    "method_fn",
    "explain_batched",
    "explain_predicted_and_target",
    "negative_perturbation_both",
    "predict",
    "negative_perturbation_eval",
    "multilabel_segmentation_eval",
    "segmentation_eval",
    "timed",
    "eval_data",
    "pooled_estimate",
    "paired_pooled_difference",
    "Comparison",
    "compare_paired",
    "combine_claims",
    "EvalCase",
    "eval_case",
    "reference_bank",
]
