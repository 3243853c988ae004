"""The reference users would otherwise pick: PyTorch eager, run as the original tool runs it.

The original ERNet evaluation feeds whole frames to the network (large frames as four
overlapping quadrants), with no tiling, and takes the argmax. Needs the ``train``
extra (torch).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ernet.runtime.preprocess import Normalization

#: Frames with more pixels than this go through the network as four quadrants.
QUADRANT_ABOVE = 1024 * 1024
#: Pixels each quadrant reaches past the frame's middle, so stitched halves see context.
QUADRANT_OVERLAP = 32


def torch_original(checkpoint: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """``segment(frame) -> labels`` with the checkpoint's model in PyTorch eager on the CPU."""
    import torch

    from ernet.training.checkpoint import load_checkpoint

    torch.set_num_threads(threads)
    loaded = load_checkpoint(checkpoint)
    model = loaded.model.eval()
    normalization: Normalization = loaded.metadata.contract.normalization

    def run(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(torch.from_numpy(np.ascontiguousarray(image))[None, None])
        return logits[0].argmax(0).numpy().astype(np.uint8)

    def segment(frame: np.ndarray) -> np.ndarray:
        image = normalization.apply(frame)
        height, width = image.shape
        if height * width <= QUADRANT_ABOVE:
            return run(image)
        labels = np.empty((height, width), np.uint8)
        my, mx, o = height // 2, width // 2, QUADRANT_OVERLAP
        # (read from, read to, keep from, keep to) along each axis
        rows = ((0, my + o, 0, my), (my - o, height, my, height))
        cols = ((0, mx + o, 0, mx), (mx - o, width, mx, width))
        for r0, r1, k0, k1 in rows:
            for c0, c1, j0, j1 in cols:
                part = run(image[r0:r1, c0:c1])
                labels[k0:k1, j0:j1] = part[k0 - r0 : k1 - r0, j0 - c0 : j1 - c0]
        return labels

    return segment
