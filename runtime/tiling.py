"""Tiled inference: a fixed-shape tile grid, blending weights and band-wise stitching.

Pure numpy and independent of any backend: a backend is just a function from a
float32 N x C x h x w batch to N x K x h x w logits. Every tile has the same shape
(what batched tiles and TensorRT engines need): the last tile of a row or column is
shifted back inside the frame; a tile larger than the frame shrinks to the frame's
longer side (:meth:`TilePlan.fitted`) unless the backend needs its fixed shape, a plan
that may grow runs a frame whole where its memory budget allows, and what remains
smaller than the tile is padded by reflection. Logits are blended with
a Gaussian weight that has a floor, and the frame is finished in row bands as soon as
the tiles covering them have run, so memory holds about two tile rows, not
whole-frame buffers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from math import isqrt

import numpy as np

RunBatch = Callable[[np.ndarray], np.ndarray]
#: Standard deviation of the blending Gaussian, as a fraction of the tile side.
SIGMA_FRACTION = 0.125
#: Smallest blending weight along each axis (so 1e-6 in a tile corner): a tile border
#: still counts where no other tile reaches, but never evens out against a tile that
#: sees the pixel from further inside (floored in 2-D, whole tile rims would tie).
WEIGHT_FLOOR = 1e-3


def axis_starts(length: int, tile: int, overlap: int, multiple_of: int = 1) -> list[int]:
    """Start offsets of tiles covering ``length`` with at least ``overlap`` shared pixels.

    Every tile has the same size; the last one is shifted back inside the axis
    instead of being padded. An axis not longer than ``tile`` gets one tile. With
    ``multiple_of`` > 1, ``tile`` and ``length`` must be multiples of it, and so is
    every start (the stride shrinks to a multiple of it, so the overlap may grow).
    """
    if length < 1 or tile < 1:
        raise ValueError("length and tile must be positive")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    if tile % multiple_of or length % multiple_of:
        raise ValueError(f"tile {tile} and length {length} must be multiples of {multiple_of}")
    if length <= tile:
        return [0]
    stride = max(multiple_of, (tile - overlap) // multiple_of * multiple_of)
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def padded_length(length: int, tile: int, multiple_of: int = 1) -> int:
    """An axis' length after padding: at least one tile, and a multiple of ``multiple_of``."""
    return max(tile, -(-length // multiple_of) * multiple_of)


@dataclass(frozen=True)
class TileGrid:
    """Origins of ``tile`` x ``tile`` tiles covering a ``height`` x ``width`` frame.

    A frame side shorter than the tile (or, for a model that needs it, not a multiple
    of ``multiple_of``) is padded (``padded_height``, ``padded_width``); tiles never
    leave the padded frame.
    """

    height: int
    width: int
    tile: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    multiple_of: int = 1

    @classmethod
    def plan(cls, height: int, width: int, tile: int, overlap: int, multiple_of: int = 1) -> TileGrid:
        """Plan square tiles of side ``tile`` overlapping by at least ``overlap`` pixels."""
        ys = axis_starts(padded_length(height, tile, multiple_of), tile, overlap, multiple_of)
        xs = axis_starts(padded_length(width, tile, multiple_of), tile, overlap, multiple_of)
        return cls(height, width, tile, tuple(ys), tuple(xs), multiple_of)

    @property
    def padded_height(self) -> int:
        return padded_length(self.height, self.tile, self.multiple_of)

    @property
    def padded_width(self) -> int:
        return padded_length(self.width, self.tile, self.multiple_of)

    @property
    def tile_pixels(self) -> int:
        """Pixels the model processes for one frame (tiles x tile area)."""
        return len(self) * self.tile * self.tile

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for y in self.ys:
            for x in self.xs:
                yield y, x


@dataclass(frozen=True)
class TilePlan:
    """How frames are tiled: the tile side, the overlap, the tiles per model call, and
    the multiple the model needs tile sides and origins to be. Resolved from a run spec
    and the model contract (:meth:`ernet.runtime.spec.RunSpec.tiling`)."""

    tile: int
    overlap: int
    batch: int = 4
    multiple_of: int = 1
    #: The backend runs one tile shape only (a TensorRT engine's profile): never shrink it.
    fixed_shape: bool = False
    #: Tiles may grow (on the CPU, where larger tiles run faster): a frame whose padded
    #: square has at most this many pixels is one tile, a larger one is cut into the
    #: largest tiles of which a batch has at most this many. None: ``tile`` as it is.
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.tile < 1:
            raise ValueError("tile must be at least 1")
        if self.batch < 1:
            raise ValueError("batch must be at least 1")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"need 0 <= overlap < tile (tile {self.tile}, overlap {self.overlap})")
        if self.tile % self.multiple_of:
            raise ValueError(f"tile {self.tile} is not a multiple of {self.multiple_of}, as this model needs")
        if self.max_pixels is not None and (self.fixed_shape or self.max_pixels < 1):
            raise ValueError("only a plan of variable tile shape may grow, to a positive number of pixels")

    @property
    def largest_tile(self) -> int:
        """The side of the tiles that a frame too large to run whole is cut into (at least ``tile``)."""
        if self.max_pixels is None:
            return self.tile
        grown = isqrt(self.max_pixels // self.batch) // self.multiple_of * self.multiple_of
        return max(self.tile, grown)

    def summary(self) -> str:
        """The tiling in words, e.g. ``tile 256, overlap 64, batch 4``."""
        tiles = f"overlap {self.overlap}, batch {self.batch}"
        if self.max_pixels is None:
            return f"tile {self.tile}, {tiles}"
        whole = isqrt(self.max_pixels) // self.multiple_of * self.multiple_of
        return f"whole frames up to {whole}x{whole}, else tiles of {self.largest_tile}, {tiles}"

    def grid(self, height: int, width: int) -> TileGrid:
        """The tile grid of a ``height`` x ``width`` frame."""
        return TileGrid.plan(height, width, self.tile, self.overlap, self.multiple_of)

    def fitted(self, height: int, width: int) -> TilePlan:
        """This plan for a ``height`` x ``width`` frame (a plan that does not grow): one
        tile over the frame's longer side where the tile is larger than the frame (less
        padding to compute) or the plan may grow that far; tiles of the largest side
        allowed where it is not; the fixed tile where the backend needs it."""
        side = padded_length(max(height, width), 1, self.multiple_of)
        if self.fixed_shape:
            return self
        plan = self
        if self.max_pixels is not None:
            tile = side if side * side <= self.max_pixels else self.largest_tile
            plan = replace(self, tile=tile, overlap=min(self.overlap, tile - 1), max_pixels=None)
        if side >= plan.tile:
            return plan
        return replace(plan, tile=side, overlap=min(plan.overlap, side - 1))


def region_margins(start: int, size: int, total: int, overlap: int) -> tuple[int, int]:
    """The margins before and after a region (``size`` pixels from ``start`` of ``total``)
    that is segmented apart from the rest of its frame: ``overlap`` each side, clipped at
    the frame's edges."""
    return min(overlap, start), min(overlap, total - start - size)


def blend_window(
    tile: int, sigma_fraction: float = SIGMA_FRACTION, floor: float = WEIGHT_FLOOR
) -> np.ndarray:
    """Separable Gaussian weight over a ``tile`` x ``tile`` tile, peak 1; each axis'
    profile is kept above ``floor``, so the weight never drops below ``floor ** 2``."""
    centre = (tile - 1) / 2
    sigma = max(sigma_fraction * tile, 1e-6)
    profile = np.maximum(np.exp(-0.5 * ((np.arange(tile) - centre) / sigma) ** 2), floor)
    return np.outer(profile, profile).astype(np.float32)


def pad_to_grid(image: np.ndarray, grid: TileGrid) -> np.ndarray:
    """``image`` (C x H x W) reflected at its bottom/right edges up to the grid's padded size."""
    pad_h, pad_w = grid.padded_height - grid.height, grid.padded_width - grid.width
    if not pad_h and not pad_w:
        return image
    return np.pad(
        image, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect" if min(image.shape[1:]) > 1 else "edge"
    )


def tile_batches(
    padded: np.ndarray, grid: TileGrid, batch: int
) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """The tiles of a padded C x H x W image in grid order, ``batch`` at a time, as
    (origins, contiguous N x C x tile x tile batch); the last batch may be short."""
    origins = list(grid)
    t = grid.tile
    for first in range(0, len(origins), batch):
        chunk = origins[first : first + batch]
        yield chunk, np.ascontiguousarray(np.stack([padded[:, y : y + t, x : x + t] for y, x in chunk]))


def stitch_bands(
    image: np.ndarray, run_batch: RunBatch, n_classes: int, plan: TilePlan
) -> Iterator[tuple[int, np.ndarray]]:
    """Blended logits of a C x H x W float32 ``image``, as ``(y0, band)`` row bands in order.

    Each ``band`` is K x h x W float32 holding rows ``y0 .. y0 + h``; together the
    bands cover the frame once. A frame that one tile covers (after padding) gets the
    model's output bit for bit.
    """
    if image.ndim != 3:
        raise ValueError(f"expected a C x H x W image, got shape {image.shape}")
    _, height, width = image.shape
    plan = plan.fitted(height, width)
    grid = plan.grid(height, width)
    tile = plan.tile
    padded = pad_to_grid(image, grid)
    if len(grid) == 1:  # the model's output bit for bit, no blending arithmetic
        logits = run_batch(np.ascontiguousarray(padded[None]))
        _check_shape(logits, (1, n_classes, tile, tile))
        yield 0, logits[0, :, :height, :width]
        return
    weight = blend_window(tile)
    row_weight = np.zeros((tile, grid.padded_width), np.float32)
    for x in grid.xs:
        row_weight[:, x : x + tile] += weight
    ys = grid.ys
    row = 0  # index into ys of the tile row being accumulated
    acc = np.zeros((n_classes, tile, grid.padded_width), np.float32)
    wsum = row_weight.copy()

    def finish_row(row: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield the rows no later tile touches; carry the rest into the next row's buffers."""
        nonlocal acc, wsum
        y0 = ys[row]
        end = ys[row + 1] if row + 1 < len(ys) else y0 + tile
        done = min(end, height) - y0
        if done > 0:
            yield y0, acc[:, :done, :width] / wsum[:done, :width]
        if row + 1 < len(ys):
            shift = ys[row + 1] - y0
            carried_acc = np.zeros_like(acc)
            carried_acc[:, : tile - shift] = acc[:, shift:]
            carried_w = row_weight.copy()
            carried_w[: tile - shift] += wsum[shift:]
            acc, wsum = carried_acc, carried_w

    for chunk, tiles in tile_batches(padded, grid, plan.batch):
        logits = run_batch(tiles)
        _check_shape(logits, (len(chunk), n_classes, tile, tile))
        for (y, x), tile_logits in zip(chunk, logits, strict=True):
            while y != ys[row]:
                yield from finish_row(row)
                row += 1
            acc[:, :, x : x + tile] += tile_logits * weight
    yield from finish_row(row)


def _check_shape(logits: np.ndarray, expected: tuple[int, ...]) -> None:
    """ValueError unless the model's logits have the ``expected`` shape and are finite
    (a model that returns NaN would otherwise give an empty mask)."""
    if logits.shape != expected:
        raise ValueError(f"model returned logits of shape {logits.shape}, expected {expected}")
    if not np.isfinite(logits).all():
        raise ValueError("model returned NaN or infinite logits: the model file is broken (or overflows)")


def tiled_logits(image: np.ndarray, run_batch: RunBatch, n_classes: int, plan: TilePlan) -> np.ndarray:
    """The bands of :func:`stitch_bands` assembled into K x H x W float32 logits."""
    return np.concatenate([band for _, band in stitch_bands(image, run_batch, n_classes, plan)], axis=1)
