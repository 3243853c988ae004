"""From logits to what users get: class ids, probabilities in their storage formats, overlays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ProbabilityFormat = Literal["float32", "float16", "uint8"]
PROBABILITY_FORMATS: tuple[ProbabilityFormat, ...] = ("float32", "float16", "uint8")


@dataclass(frozen=True)
class Prediction:
    """What one frame's inference gives: class ids, and class probabilities when asked."""

    labels: np.ndarray  # H x W uint8
    probabilities: np.ndarray | None = None  # K x H x W, float32/float16, or uint8 scaled to 0-255
    #: False for a frame without contrast (an empty normalisation range): all background.
    contrast: bool = True


def background_prediction(
    n_classes: int, height: int, width: int, probabilities: ProbabilityFormat | None = None
) -> Prediction:
    """The prediction of a frame without contrast: every pixel background, with certainty."""
    probs = None
    if probabilities is not None:
        probs = np.zeros((n_classes, height, width), probabilities)
        probs[0] = 255 if probabilities == "uint8" else 1
    return Prediction(np.zeros((height, width), np.uint8), probs, contrast=False)


def class_ids(logits: np.ndarray) -> np.ndarray:
    """Argmax over the class axis (0); for two classes a comparison, several times faster."""
    if logits.shape[0] == 2:
        return logits[1] > logits[0]  # ties go to class 0, as with argmax
    return logits.argmax(axis=0)


#: Pixels touching by an edge or a corner are one piece (as the network analysis counts).
EIGHT_CONNECTED = np.ones((3, 3), bool)


def without_small_pieces(labels: np.ndarray, min_size: int) -> np.ndarray:
    """``labels`` with every 8-connected piece of foreground (any class but 0) smaller than
    ``min_size`` pixels set to background."""
    if min_size <= 1:
        return labels
    from scipy import ndimage

    pieces, _ = ndimage.label(labels != 0, structure=EIGHT_CONNECTED)
    small = np.bincount(pieces.ravel()) < min_size
    small[0] = False
    out = labels.copy()
    out[small[pieces]] = 0
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the class axis (0) of K x ... float32 logits."""
    shifted = np.exp(logits - logits.max(axis=0, keepdims=True))
    shifted /= shifted.sum(axis=0, keepdims=True)
    return shifted


def probabilities_as(logits: np.ndarray, fmt: ProbabilityFormat) -> np.ndarray:
    """Class probabilities of K x ... logits in a storage format: float32, float16, or
    uint8 scaled to 0-255."""
    p = softmax(logits)
    return (np.rint(p * 255) if fmt == "uint8" else p).astype(fmt, copy=False)


#: Overlay colours (RGB) of classes 1, 2, ...; background stays grey.
CLASS_COLOURS = np.array([[255, 0, 255], [0, 255, 0], [255, 160, 0], [0, 160, 255]], np.float32)


def label_rgba(label: int) -> list[int]:
    """The RGBA colour of class id ``label`` in image-label metadata: background
    transparent, the others as :func:`overlay` tints them."""
    if label == 0:
        return [0, 0, 0, 0]
    return [*CLASS_COLOURS[(label - 1) % len(CLASS_COLOURS)].astype(int).tolist(), 255]


def overlay_legend(class_names: tuple[str, ...]) -> dict[str, str]:
    """The colour (``#rrggbb``) each class >= 1 is tinted with in :func:`overlay`."""
    colours = CLASS_COLOURS.astype(int)
    return {
        name: "#{:02x}{:02x}{:02x}".format(*colours[(k - 1) % len(colours)])
        for k, name in enumerate(class_names[1:], start=1)
    }


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB uint8 view of a normalised frame (0-1) with each class >= 1 tinted."""
    grey = np.clip(image, 0.0, 1.0) * np.float32(255)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for k in range(1, int(labels.max(initial=0)) + 1):
        where = labels == k
        rgb[where] = (1 - alpha) * rgb[where] + alpha * CLASS_COLOURS[(k - 1) % len(CLASS_COLOURS)]
    return np.rint(rgb).astype(np.uint8)
