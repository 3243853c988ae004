"""Scoring a model on labelled images, frame by frame, beside a classical baseline.

Each ``NAME_image`` / ``NAME_mask`` pair (a frame or a stack) is segmented through
the runtime exactly as ``ernet-infer`` does (or its ``ernet-infer`` masks are read),
and the foreground is scored over all of its frames. The baseline is a local
threshold (scipy).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..contract import BINARY_CLASSES
from ..errors import InputError
from ..io import atomic_output, mask_path, open_image
from ..postprocess import overlay
from ..preprocess import Normalization
from ..segmenter import Segmenter
from .scores import class_scores, foreground_scores, in_label_classes, label_classes

#: ``predict(image_path, frames) -> labels`` of all frames of one image, stacked.
Predict = Callable[[Path, list[np.ndarray]], np.ndarray]


def local_threshold(frame: np.ndarray, block: int = 31, offset: float = 0.0) -> np.ndarray:
    """Classical baseline: a pixel is ER where its smoothed value exceeds the mean of
    its ``block`` x ``block`` neighbourhood (plus ``offset`` x the frame's std)."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(frame.astype(np.float32), 1.0)
    local = ndimage.uniform_filter(smooth, block)
    return (smooth > local + offset * smooth.std()).astype(np.uint8)


def model_predictions(segmenter: Segmenter) -> Predict:
    """Predictions by running ``segmenter`` on every frame."""
    return lambda image_path, frames: np.stack([segmenter.segment(f) for f in frames])


def saved_predictions(folder: Path) -> Predict:
    """Predictions read from the masks ``ernet-infer`` wrote to ``folder``."""

    def predict(image_path: Path, frames: list[np.ndarray]) -> np.ndarray:
        return open_image(mask_path(image_path, folder)).data.reshape(len(frames), *frames[0].shape)

    return predict


#: The colours of an agreement view, as the tints of :func:`~ernet.runtime.postprocess.overlay`.
AGREEMENT_LEGEND = "magenta: predicted ER the label calls background, green: ER found, orange: ER missed"


def agreement_view(frame: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """RGB uint8: ``frame`` in grey, tinted where ``prediction`` and ``truth`` have ER
    (any class but background) or disagree about it (see AGREEMENT_LEGEND)."""
    predicted, labelled = prediction > 0, truth > 0
    agreement = np.zeros(frame.shape, np.uint8)
    agreement[predicted & ~labelled] = 1
    agreement[predicted & labelled] = 2
    agreement[~predicted & labelled] = 3
    return overlay(Normalization().apply(frame[None])[0], agreement)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 picture as PNG, atomically."""
    from PIL import Image

    with atomic_output(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


def score_pair(
    name: str,
    image_path: Path,
    truth_path: Path,
    predict: Predict,
    baseline: bool,
    view: Path | None = None,
    class_names: tuple[str, ...] = BINARY_CLASSES,
    network: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Scores of one labelled image or stack (all its frames together): the foreground's
    IoU and Dice and, where the labels hold the ids of the model's ``class_names`` (more
    than two), each class's. Binary labels score a model of more classes by its
    ``network`` classes (None: its foreground), the original ERNet's labels' ER. With
    ``view``, the agreement view of its first frame is written there as PNG."""
    image, truth = open_image(image_path), open_image(truth_path).data
    if truth.shape != image.shape:
        raise InputError(f"{truth_path}: shape {truth.shape} differs from {image_path}'s {image.shape}")
    frames = list(image.frames())
    truth = truth.reshape(len(frames), *image.frame_shape)
    predictions = predict(image_path, frames)
    labels = label_classes(truth, class_names) if len(class_names) > 2 else BINARY_CLASSES
    if labels == BINARY_CLASSES:
        predictions = in_label_classes(predictions, class_names, labels, network).astype(np.uint8)
    row: dict[str, Any] = {"frame": name, **foreground_scores(predictions, truth)}
    if len(class_names) > 2 and labels == class_names:
        per_class = class_scores(predictions, truth, class_names)
        row.update({f"{s}_{c}": per_class[f"{s}_{c}"] for c in class_names[1:] for s in ("iou", "dice")})
    if view is not None:
        write_png(view, agreement_view(frames[0], truth[0], predictions[0]))
    if baseline:
        base = foreground_scores(np.stack([local_threshold(f) for f in frames]), truth)
        row.update(baseline_iou=base["iou"], baseline_dice=base["dice"])
    return row


def mean_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of each score over the rows that have it (NaN: a class in neither)."""
    names = dict.fromkeys(k for row in rows for k in row if k != "frame")
    means = {}
    for k in names:
        values = [r[k] for r in rows if k in r and math.isfinite(r[k])]
        means[k] = statistics.fmean(values) if values else math.nan
    return means
