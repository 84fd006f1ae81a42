"""Scores of a predicted blur mask against a hand-labelled one (blur-detection conventions).

Masks are boolean "sharp" arrays (True = sharp / in focus), as in ReBlurSR's 255 = sharp.
"""

from __future__ import annotations

import numpy as np


def mean_iou(pred_sharp: np.ndarray, true_sharp: np.ndarray) -> float:
    """Mean over the two classes (blurred, sharp) of intersection over union.
    A class absent from both masks counts as IoU 1."""
    ious = []
    for cls in (False, True):
        pred, true = pred_sharp == cls, true_sharp == cls
        union = np.logical_or(pred, true).sum()
        ious.append(np.logical_and(pred, true).sum() / union if union else 1.0)
    return float(np.mean(ious))


def f_measure(pred_sharp: np.ndarray, true_sharp: np.ndarray, beta2: float = 0.3) -> float:
    """F-measure of the sharp (in-focus) region, beta^2 = 0.3 as defocus-blur-detection papers
    report it. 0 when nothing is predicted or labelled sharp."""
    tp = np.logical_and(pred_sharp, true_sharp).sum()
    if tp == 0:
        return 0.0
    precision = tp / pred_sharp.sum()
    recall = tp / true_sharp.sum()
    return float((1 + beta2) * precision * recall / (beta2 * precision + recall))


def mean_absolute_error(soft_sharpness: np.ndarray, true_sharp: np.ndarray) -> float:
    """MAE between a soft sharpness map in [0, 1] and the binary label."""
    return float(np.abs(np.asarray(soft_sharpness, np.float64) - true_sharp).mean())
