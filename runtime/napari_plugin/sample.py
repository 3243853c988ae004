"""File ▸ Open Sample ▸ ERNet ▸ Synthetic ER time-lapse: a cell from the project's generator
(numpy and scipy, no torch), so that the plugin can be tried in one click."""

from __future__ import annotations

import numpy as np

from ..contract import BINARY_CLASSES
from .segment import LayerData, class_colours

#: The sample: frames, side (px) and the generator's seed.
SAMPLE_FRAMES, SAMPLE_SIDE, SAMPLE_SEED = 10, 384, 7


def synthetic_timelapse() -> list[LayerData]:
    """A synthetic ER time-lapse (T x Y x X, 8-bit) and its true labels (hidden)."""
    # The generator lives with the training code but needs only numpy and SciPy.
    from ernet.training.synthetic import SyntheticConfig, generate_stack

    frames = generate_stack(
        SAMPLE_FRAMES, SAMPLE_SEED, SyntheticConfig(height=SAMPLE_SIDE, width=SAMPLE_SIDE)
    )
    image = np.stack([f.image for f in frames])
    truth = np.stack([f.mask for f in frames])
    return [
        (image, {"name": "synthetic ER", "colormap": "gray"}, "image"),
        (
            truth,
            {"name": "synthetic ER truth", "colormap": class_colours(len(BINARY_CLASSES)), "visible": False},
            "labels",
        ),
    ]
