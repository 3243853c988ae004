"""Synthetic ER images with exact labels (numpy/scipy only; importable without torch).

A polygonal tubule network from the Voronoi diagram of random seeds, bounded by
a cell outline, blurred by a Gaussian PSF over haze and background, with
Poisson shot noise, read noise and offset, quantised to 8 or 16 bits.
Everything is vectorised and seeded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import Voronoi


@dataclass(frozen=True)
class SyntheticConfig:
    """Ranges (low, high) from which each frame draws its parameters."""

    height: int = 256
    width: int = 256
    spacing: tuple[float, float] = (12.0, 30.0)  # mean distance between seeds, px
    keep_edges: tuple[float, float] = (0.75, 0.95)  # fraction of network edges kept
    label_width: tuple[float, float] = (2.5, 4.0)  # tubule thickness in labels, px
    psf_sigma: tuple[float, float] = (0.8, 1.6)  # px
    signal: tuple[float, float] = (40.0, 160.0)  # photons at a tubule's centre
    haze: tuple[float, float] = (0.0, 30.0)  # out-of-focus photons inside the cell
    background: tuple[float, float] = (2.0, 10.0)  # photons outside cells
    read_noise: tuple[float, float] = (1.0, 4.0)  # camera counts
    offset: float = 5.0  # camera counts
    bit_depth: int = 8


@dataclass
class SyntheticFrame:
    image: np.ndarray  # uint8 or uint16
    mask: np.ndarray  # uint8 class ids, 1 = ER


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _edge_hash(a: np.ndarray, b: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic number in [0, 1) per unordered seed pair (stable across frames)."""
    lo, hi = np.minimum(a, b).astype(np.uint64), np.maximum(a, b).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = lo * np.uint64(0x9E3779B97F4A7C15) ^ hi * np.uint64(0xC2B2AE3D27D4EB4F)
        h ^= np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x165667B19E3779F9)
        h ^= h >> np.uint64(29)
    return (h % np.uint64(1 << 24)).astype(np.float64) / float(1 << 24)


def _rasterise(segments: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean centreline image of line segments (S x 4: y0, x0, y1, x1), sampled every 0.5 px."""
    out = np.zeros((height, width), bool)
    if len(segments) == 0:
        return out
    p0, p1 = segments[:, :2], segments[:, 2:]
    counts = np.ceil(np.linalg.norm(p1 - p0, axis=1) / 0.5).astype(np.int64) + 1
    seg = np.repeat(np.arange(len(segments)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    t = ((np.arange(counts.sum()) - first) / np.maximum(counts[seg] - 1, 1))[:, None]
    pts = np.rint(p0[seg] + t * (p1[seg] - p0[seg])).astype(np.int64)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < height) & (pts[:, 1] >= 0) & (pts[:, 1] < width)
    out[pts[inside, 0], pts[inside, 1]] = True
    return out


def _network_segments(points: np.ndarray, keep: float, seed: int) -> np.ndarray:
    vor = Voronoi(points)
    ridges = np.asarray(vor.ridge_vertices)
    pairs = np.asarray(vor.ridge_points)
    finite = (ridges >= 0).all(axis=1)
    kept = finite & (_edge_hash(pairs[:, 0], pairs[:, 1], seed) < keep)
    v = vor.vertices[ridges[kept]]
    return v.reshape(-1, 4)


def _smooth_field(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Smooth random field in [0, 1] with features about ``scale`` px across."""
    coarse = rng.random((max(2, int(height / scale) + 2), max(2, int(width / scale) + 2)))
    field = ndimage.zoom(coarse, (height / (coarse.shape[0] - 1), width / (coarse.shape[1] - 1)), order=3)
    field = field[:height, :width]
    field -= field.min()
    return field / max(float(field.max()), 1e-9)


def generate_stack(
    n_frames: int = 1, seed: int = 0, config: SyntheticConfig | None = None, drift: float = 0.6
) -> list[SyntheticFrame]:
    """``n_frames`` frames of one cell whose network moves by ``drift`` px per frame."""
    cfg = config or SyntheticConfig()
    rng = np.random.default_rng(seed)
    h, w = cfg.height, cfg.width
    spacing = _uniform(rng, cfg.spacing)
    margin = 2 * spacing
    n_points = max(4, int((h + 2 * margin) * (w + 2 * margin) / spacing**2))
    points = rng.uniform((-margin, -margin), (h + margin, w + margin), size=(n_points, 2))
    keep = _uniform(rng, cfg.keep_edges)
    width_px = _uniform(rng, cfg.label_width)
    psf = _uniform(rng, cfg.psf_sigma)
    signal, haze_level = _uniform(rng, cfg.signal), _uniform(rng, cfg.haze)
    background, read_noise = _uniform(rng, cfg.background), _uniform(rng, cfg.read_noise)
    cell = _smooth_field(rng, h, w, max(h, w) / 2) > rng.uniform(0.15, 0.4)
    gradient = 0.5 + _smooth_field(rng, h, w, max(h, w) / 1.5)
    haze = ndimage.gaussian_filter(cell.astype(np.float32), max(h, w) / 20) * haze_level
    max_value = (1 << cfg.bit_depth) - 1
    frames = []
    for _ in range(n_frames):
        centre = _rasterise(_network_segments(points, keep, seed), h, w) & cell
        distance = ndimage.distance_transform_edt(~centre)
        mask = distance <= width_px / 2
        tubules = ndimage.gaussian_filter(np.exp(-(distance**2) / (2 * (width_px / 3) ** 2)), psf)
        photons = (signal * tubules + haze) * gradient + background
        counts = rng.poisson(photons) + rng.normal(cfg.offset, read_noise, size=(h, w))
        image = np.clip(np.rint(counts), 0, max_value).astype(np.uint8 if cfg.bit_depth <= 8 else np.uint16)
        frames.append(SyntheticFrame(image, mask.astype(np.uint8)))
        points = points + rng.normal(0.0, drift, size=points.shape)
    return frames


def generate(seed: int = 0, config: SyntheticConfig | None = None) -> SyntheticFrame:
    """One synthetic frame."""
    return generate_stack(1, seed, config)[0]
