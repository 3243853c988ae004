"""The camera: shot noise, read noise and quantisation of an expected image."""

from __future__ import annotations

import numpy as np


def expose(
    expected: np.ndarray, gain: float, read_noise: float, rng: np.random.Generator, bit_depth: int
) -> np.ndarray:
    """Counts of ``expected`` (in counts) at ``gain`` counts per photon, with Gaussian read
    noise, clipped and quantised to ``bit_depth`` bits."""
    photons = rng.poisson(np.maximum(expected, 0) / gain)
    counts = gain * photons + rng.normal(0, read_noise, size=expected.shape)
    image = np.clip(np.rint(counts), 0, float((1 << bit_depth) - 1))
    return image.astype(np.uint8 if bit_depth <= 8 else np.uint16)
