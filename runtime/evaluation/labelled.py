"""Labelled frames to evaluate on, and where the project's real ones are."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..contract import BINARY_CLASSES
from ..io import labelled_pairs, open_image

#: The real, hand-labelled ER frames (``NAME_image.tif`` / ``NAME_mask.tif``): where the
#: project keeps them beside a checkout, relative to the working directory (the
#: repository root), unless ``$ERNET_REAL_DATA`` names another folder.
REAL_DATA = Path(os.environ.get("ERNET_REAL_DATA") or "../shared/data/er-real")


@dataclass(frozen=True)
class LabelledFrames:
    """A named set of frames with their labels, and the classes the labels use (the real
    frames' and the generator's: background and ER)."""

    name: str
    frames: list[np.ndarray]
    labels: list[np.ndarray]
    class_names: tuple[str, ...] = BINARY_CLASSES


def labelled_frames(folder: Path, name: str) -> LabelledFrames | None:
    """Every frame of the labelled pairs in ``folder``, as a set called ``name``; None
    where the folder is absent."""
    if not folder.is_dir():
        return None
    pairs = labelled_pairs(folder)
    images = [frame for p in pairs for frame in open_image(p.image).frames()]
    masks = [frame for p in pairs for frame in open_image(p.mask).frames()]
    return LabelledFrames(name, images, masks)
