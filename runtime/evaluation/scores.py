"""Segmentation scores, the one home: a confusion matrix, per-class IoU and Dice for
K classes, and the foreground (every class but background, as one) of a frame."""

from __future__ import annotations

import numpy as np

from ..contract import BINARY_CLASSES, ModelContract
from ..errors import InputError


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


def truth_ids(truth: np.ndarray, n_classes: int) -> np.ndarray:
    """Label values as class ids of a ``n_classes`` model: for two classes any non-zero
    label is the foreground (0/1 and 0/255 masks alike); else the labels must be ids."""
    truth = np.asarray(truth)
    if n_classes == 2:
        return truth != 0
    if truth.size and (truth.min() < 0 or truth.max() >= n_classes):
        raise InputError(
            f"labels hold values {int(truth.min())}..{int(truth.max())}, not ids of {n_classes} classes"
        )
    return truth


def label_classes(truth: np.ndarray, model_classes: tuple[str, ...]) -> tuple[str, ...]:
    """The classes some labels use: background and ER where they hold no value but 0 and
    1 (or 0 and 255); else the model's own classes, whose ids they must be."""
    values = np.unique(np.asarray(truth))
    if values.max(initial=0) <= 1 or set(values.tolist()) <= {0, 255}:
        return BINARY_CLASSES
    truth_ids(truth, len(model_classes))  # InputError for values that are not its class ids
    return model_classes


def in_label_classes(
    prediction: np.ndarray,
    model_classes: tuple[str, ...],
    label_classes: tuple[str, ...],
    network: tuple[int, ...] | None = None,
) -> np.ndarray:
    """A model's class ids as ids of the classes some labels use: unchanged where those are
    the model's classes; where the labels are binary (background and ER: the original
    ERNet's, whose ER is the tubular network) and the model has more classes, its
    ``network`` class ids (None: every class but background) as 1; else InputError."""
    if label_classes == model_classes:
        return np.asarray(prediction)
    if label_classes == BINARY_CLASSES:
        return np.isin(prediction, network) if network else np.asarray(prediction) != 0
    raise InputError(
        f"labels of classes {', '.join(label_classes)} cannot score a model of classes "
        f"{', '.join(model_classes)}"
    )


def labelled_er(prediction: np.ndarray, contract: ModelContract) -> np.ndarray:
    """A model's class ids as the ER of binary labels (the original ERNet's: the tubular
    network is ER): its network classes, as bool."""
    return (
        np.asarray(
            in_label_classes(prediction, contract.class_names, BINARY_CLASSES, contract.network_classes)
        )
        != 0
    )


def class_scores(prediction: np.ndarray, truth: np.ndarray, class_names: tuple[str, ...]) -> dict[str, float]:
    """:func:`scores` of class ids against labels (see :func:`truth_ids`) over all pixels."""
    k = len(class_names)
    return scores(confusion_matrix(prediction, truth_ids(truth, k), k), class_names)


def foreground_scores(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``iou`` and ``dice`` of the foreground (any non-zero class) over all pixels."""
    s = class_scores(np.asarray(prediction) != 0, truth, BINARY_CLASSES)
    return {"iou": s["iou_ER"], "dice": s["dice_ER"]}
