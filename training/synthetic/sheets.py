"""ER sheets and the dense tubular matrices (SBT) beside them.

Sheets are flat cisternae: large smooth regions around the nucleus (and a few
patches further out), evenly bright with a slow texture, pierced by fenestrations
(small dark holes). Sheet-based tubules are dense tubular matrices in a band just
outside the sheets, drawn as a Voronoi network of closely spaced seeds.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .fields import smooth_field, wobbly_radius


def sheet_region(
    rng: np.random.Generator, shape: tuple[int, int], centre: np.ndarray, nucleus: float, extent: float
) -> np.ndarray:
    """H x W bool: an irregular band of sheets around the nucleus (out to about
    ``nucleus x (1 + extent)``) and a few sheet patches just beyond it."""
    radius = wobbly_radius(rng, shape, centre, nucleus * (1 + extent), 0.08)
    patches = smooth_field(rng, *shape, scale=max(12.0, nucleus * extent)) > 0.78
    region = (radius <= 1) | (patches & (radius < 1.5))
    yy, xx = np.ogrid[0 : shape[0], 0 : shape[1]]
    return region & ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 > nucleus**2)


def sheet_brightness(
    rng: np.random.Generator, region: np.ndarray, fenestrations: float, hole_radius: float
) -> np.ndarray:
    """H x W float32, 0 off the sheets: a slow texture about 1, darkened by holes at a
    density of ``fenestrations`` per px² of sheet."""
    h, w = region.shape
    texture = 0.7 + 0.6 * smooth_field(rng, h, w, scale=40.0)
    ij = (rng.random((rng.poisson(fenestrations * h * w), 2)) * (h, w)).astype(np.int64)
    ij = ij[region[ij[:, 0], ij[:, 1]]]  # uniform over the frame, kept on the sheets
    holes = np.zeros((h, w), np.float32)
    holes[ij[:, 0], ij[:, 1]] = 2 * np.pi * hole_radius**2  # a blurred impulse peaks at about 1
    holes = np.clip(ndimage.gaussian_filter(holes, hole_radius), 0, 1)
    soft_edge = ndimage.gaussian_filter(region.astype(np.float32), 1.5)
    return (texture * (1 - 0.85 * holes) * soft_edge).astype(np.float32)


def sbt_zone(rng: np.random.Generator, region: np.ndarray, band: float, cover: float) -> np.ndarray:
    """H x W bool: patches (about ``cover`` of the band) within ``band`` px outside the sheets."""
    zone = np.zeros(region.shape, bool)
    if band <= 0 or not region.any():
        return zone
    rows, cols = np.nonzero(region)
    pad = int(np.ceil(band)) + 1
    y0, y1 = max(rows.min() - pad, 0), min(rows.max() + pad + 1, region.shape[0])
    x0, x1 = max(cols.min() - pad, 0), min(cols.max() + pad + 1, region.shape[1])
    distance = ndimage.distance_transform_edt(~region[y0:y1, x0:x1])
    patches = smooth_field(rng, y1 - y0, x1 - x0, scale=max(2 * band, 16.0)) < cover
    zone[y0:y1, x0:x1] = (distance > 0) & (distance <= band) & patches
    return zone


def dense_seeds(rng: np.random.Generator, zone: np.ndarray, spacing: float) -> np.ndarray:
    """Seeds about ``spacing`` px apart, uniformly over ``zone`` (N x 2, px)."""
    count = rng.poisson(zone.sum() / spacing**2)
    candidates = rng.random((int(count * zone.size / max(zone.sum(), 1)), 2)) * zone.shape
    ij = candidates.astype(np.int64)
    return candidates[zone[ij[:, 0], ij[:, 1]]]
