"""Segmentation scores: one confusion matrix, per-class IoU and Dice (numpy only)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(prediction: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """K x K counts, rows = truth, columns = prediction."""
    index = np.asarray(truth, np.int64).ravel() * n_classes + np.asarray(prediction, np.int64).ravel()
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores(matrix: np.ndarray, class_names: tuple[str, ...]) -> dict[str, float]:
    """``iou_<class>`` and ``dice_<class>`` (NaN for a class absent from both), and
    ``mean_iou_foreground``: the mean IoU of every class but the first."""
    m = np.asarray(matrix, np.float64)
    tp = np.diag(m)
    fp, fn = m.sum(0) - tp, m.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (tp + fp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
    out: dict[str, float] = {}
    for i, name in enumerate(class_names):
        out[f"iou_{name}"] = float(iou[i])
        out[f"dice_{name}"] = float(dice[i])
    foreground = iou[1:] if len(class_names) > 1 else iou
    out["mean_iou_foreground"] = (
        float(np.nanmean(foreground)) if np.isfinite(foreground).any() else float("nan")
    )
    return out
