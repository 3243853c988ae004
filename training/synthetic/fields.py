"""Smooth random fields and soft shapes: the generator's building blocks (numpy/scipy)."""

from __future__ import annotations

import numpy as np


def _interpolation(n_out: int, n_in: int) -> np.ndarray:
    """n_out x n_in weights of linear interpolation from n_in knots: the first n_out
    samples of their zoom by n_out / (n_in - 1) (as ``scipy.ndimage.zoom``, order 1)."""
    zoomed = round(n_in * n_out / (n_in - 1))
    position = np.arange(n_out) * (n_in - 1) / (zoomed - 1)
    low = np.minimum(position.astype(np.int64), n_in - 2)
    frac = position - low
    weights = np.zeros((n_out, n_in))
    weights[np.arange(n_out), low] = 1 - frac
    weights[np.arange(n_out), low + 1] = frac
    return weights


def smooth_field(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Smooth random field in [0, 1] with features about ``scale`` px across (float32)."""
    coarse = rng.random((max(2, int(height / scale) + 2), max(2, int(width / scale) + 2)))
    field = _interpolation(height, coarse.shape[0]) @ coarse @ _interpolation(width, coarse.shape[1]).T
    field -= field.min()
    return (field / max(float(field.max()), 1e-9)).astype(np.float32)


def smooth_at(knots: np.ndarray, spacing: float, points: np.ndarray) -> np.ndarray:
    """Bilinear values at ``points`` (N x 2, px) of random ``knots`` laid ``spacing`` px apart."""
    from scipy import ndimage

    return ndimage.map_coordinates(knots, (points / spacing).T, order=1, mode="nearest")


def soft_inside(relative_radius: np.ndarray, softness: float = 0.08) -> np.ndarray:
    """1 inside (radius < 1), 0 outside, with a smooth edge: out-of-focus cell bodies."""
    with np.errstate(over="ignore"):  # far outside: exp overflows to inf, the value to 0
        return (1.0 / (1.0 + np.exp((relative_radius - 1.0) / softness))).astype(np.float32)


def wobbly_radius(
    rng: np.random.Generator, shape: tuple[int, int], centre: np.ndarray, radius: float, amplitude: float
) -> np.ndarray:
    """Distance from ``centre`` over a radius that wobbles with the angle (five random
    harmonics of ``amplitude``): < 1 inside an irregular blob (float32, H x W)."""
    yy, xx = np.ogrid[0 : shape[0], 0 : shape[1]]
    dy, dx = (yy - centre[0]).astype(np.float32), (xx - centre[1]).astype(np.float32)
    distance = np.sqrt(dy**2 + dx**2)
    cos1, sin1 = dx / np.maximum(distance, 1e-6), dy / np.maximum(distance, 1e-6)
    harmonics = rng.normal(0, amplitude, size=(2, 5))
    wobble = np.zeros(shape, np.float32)
    cos_k, sin_k = cos1, sin1
    for k in range(5):  # cos/sin of (k+1) x angle by the angle-addition recurrence
        wobble += harmonics[0, k] * cos_k + harmonics[1, k] * sin_k
        cos_k, sin_k = cos_k * cos1 - sin_k * sin1, sin_k * cos1 + cos_k * sin1
    return distance / (radius * (1 + wobble))


def distractor_cells(
    rng: np.random.Generator, height: int, width: int, count: int, level: float
) -> np.ndarray:
    """Dim ellipses: out-of-focus cells whose ER is not resolved (labelled background)."""
    out = np.zeros((height, width), np.float32)
    yy, xx = np.ogrid[0:height, 0:width]
    for _ in range(count):  # a handful per frame: not a hot loop
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(0.05, 0.2, size=2) * min(height, width)
        out += (
            soft_inside(np.sqrt((yy - cy) ** 2 / ry**2 + (xx - cx) ** 2 / rx**2), 0.25)
            * rng.uniform(0.3, 1.5)
            * level
        )
    return out
