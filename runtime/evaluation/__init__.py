"""Evaluation: K-class scores (the one scoring home), labelled frames, and scoring a
model on labelled images (``ernet-validate``)."""

from .labelled import REAL_DATA, LabelledFrames, labelled_frames
from .scores import (
    class_scores,
    confusion_matrix,
    foreground_scores,
    in_label_classes,
    label_classes,
    labelled_er,
    scores,
    truth_ids,
)

__all__ = [
    "REAL_DATA",
    "LabelledFrames",
    "class_scores",
    "confusion_matrix",
    "foreground_scores",
    "in_label_classes",
    "label_classes",
    "labelled_er",
    "labelled_frames",
    "scores",
    "truth_ids",
]
