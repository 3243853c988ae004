"""Scoring a model on labelled images, frame by frame, beside a classical baseline.

Each ``NAME_image`` / ``NAME_mask`` pair (a frame or a stack) is segmented through
the runtime exactly as ``ernet-infer`` does (or its ``ernet-infer`` masks are read),
and the foreground is scored over all of its frames. The baseline is a local
threshold (needs scipy, from the ``analysis`` extra).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io import mask_path, open_image
from ..segmenter import Segmenter
from .scores import foreground_scores

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


def score_pair(
    name: str, image_path: Path, truth_path: Path, predict: Predict, baseline: bool
) -> dict[str, Any]:
    """Scores of one labelled image or stack (all its frames together)."""
    image, truth = open_image(image_path), open_image(truth_path).data
    if truth.shape != image.shape:
        raise InputError(f"{truth_path}: shape {truth.shape} differs from {image_path}'s {image.shape}")
    frames = list(image.frames())
    truth = truth.reshape(len(frames), *image.frame_shape)
    row: dict[str, Any] = {"frame": name, **foreground_scores(predict(image_path, frames), truth)}
    if baseline:
        base = foreground_scores(np.stack([local_threshold(f) for f in frames]), truth)
        row.update(baseline_iou=base["iou"], baseline_dice=base["dice"])
    return row


def mean_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of each score over the rows."""
    return {k: statistics.fmean(r[k] for r in rows) for k in rows[0] if k != "frame"}
