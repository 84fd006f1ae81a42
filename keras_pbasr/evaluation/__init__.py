"""Evaluating super-resolution results: `evaluate` (pair -> score -> aggregate -> write),
its reports and plots, and the discriminator analysis. The metric functions it calls are
`keras_pbasr.metrics`.
"""

from keras_pbasr.evaluation.discriminator_analysis import analyze_discriminator
from keras_pbasr.evaluation.evaluation import (
    aggregate,
    evaluate,
    load_labels,
    pair_images,
    score_pairs,
    write_reports,
)

__all__ = [
    "aggregate",
    "analyze_discriminator",
    "evaluate",
    "load_labels",
    "pair_images",
    "score_pairs",
    "write_reports",
]
