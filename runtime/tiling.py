"""Tiled inference: a fixed-shape tile grid, blending weights and stitching.

Pure numpy and independent of any backend: a backend is just a function from a
float32 N x C x h x w batch to N x K x h x w logits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

RunBatch = Callable[[np.ndarray], np.ndarray]


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``length`` with at least ``overlap`` shared pixels.

    Every tile has the same size; the last one is shifted back inside the axis
    instead of being padded. An axis not longer than ``tile`` gets one tile.
    """
    if length < 1 or tile < 1:
        raise ValueError("length and tile must be positive")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class TileGrid:
    """Origins of equal-shape tiles covering a ``height`` x ``width`` frame."""

    height: int
    width: int
    tile_height: int
    tile_width: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @classmethod
    def plan(cls, height: int, width: int, tile: int, overlap: int) -> TileGrid:
        """Plan tiles of ``tile`` x ``tile`` (clamped to the frame) overlapping by ``overlap``."""
        th, tw = min(tile, height), min(tile, width)
        ys = axis_starts(height, th, min(overlap, th - 1))
        xs = axis_starts(width, tw, min(overlap, tw - 1))
        return cls(height, width, th, tw, tuple(ys), tuple(xs))

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for y in self.ys:
            for x in self.xs:
                yield y, x


def blend_window(height: int, width: int, ramp: int, floor: float = 0.05) -> np.ndarray:
    """Separable weight rising linearly over ``ramp`` pixels from each border.

    The weight never drops below ``floor``, so every pixel of a tile counts and
    a pixel covered by a single tile keeps that tile's prediction exactly.
    """

    def profile(n: int) -> np.ndarray:
        i = np.arange(n, dtype=np.float32) + 0.5
        if ramp <= 0:
            return np.ones(n, np.float32)
        edge = np.minimum(i, n - i) / np.float32(ramp)
        return np.clip(edge, floor, 1.0).astype(np.float32)

    return profile(height)[:, None] * profile(width)[None, :]


def tiled_logits(
    image: np.ndarray,
    run_batch: RunBatch,
    n_classes: int,
    tile: int,
    overlap: int,
    batch_size: int = 4,
) -> np.ndarray:
    """Blend the logits of overlapping tiles of a C x H x W float32 ``image``.

    Returns K x H x W float32 logits. Where the frame fits in one tile the result
    is exactly ``run_batch`` on the whole frame.
    """
    if image.ndim != 3:
        raise ValueError(f"expected a C x H x W image, got shape {image.shape}")
    _, height, width = image.shape
    grid = TileGrid.plan(height, width, tile, overlap)
    th, tw = grid.tile_height, grid.tile_width
    # One tile: unit weight, so the result is the model's output bit for bit.
    weight = blend_window(th, tw, overlap) if len(grid) > 1 else np.ones((th, tw), np.float32)
    out = np.zeros((n_classes, height, width), np.float32)
    weight_sum = np.zeros((height, width), np.float32)
    origins = list(grid)
    for first in range(0, len(origins), max(1, batch_size)):
        chunk = origins[first : first + batch_size]
        tiles = np.stack([image[:, y : y + th, x : x + tw] for y, x in chunk])
        logits = run_batch(np.ascontiguousarray(tiles))
        if logits.shape != (len(chunk), n_classes, th, tw):
            raise ValueError(
                f"model returned logits of shape {logits.shape}, expected {(len(chunk), n_classes, th, tw)}"
            )
        for (y, x), tile_logits in zip(chunk, logits, strict=True):
            out[:, y : y + th, x : x + tw] += tile_logits * weight
            weight_sum[y : y + th, x : x + tw] += weight
    out /= weight_sum
    return out
