"""The tiler: fixed-shape tiles covering any frame, blended back exactly where they agree."""

from __future__ import annotations

import numpy as np
import pytest

from ernet.runtime.tiling import TileGrid, axis_starts, blend_window, tiled_logits


@pytest.mark.parametrize("length", [1, 5, 63, 64, 65, 100, 129, 1000, 1392])
@pytest.mark.parametrize("tile,overlap", [(64, 0), (64, 16), (64, 32), (256, 64)])
def test_axis_starts_cover_with_equal_tiles_inside(length: int, tile: int, overlap: int) -> None:
    starts = axis_starts(length, tile, overlap)
    size = min(tile, length)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and s + size <= length  # never outside: the last tile shifts back in
        covered[s : s + size] = True
    assert covered.all()
    assert starts == sorted(set(starts))
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + size - b >= min(overlap, size - 1)  # neighbours share at least the overlap


def test_axis_starts_rejects_bad_overlap() -> None:
    with pytest.raises(ValueError):
        axis_starts(100, 64, 64)


def test_grid_clamps_tile_to_small_frames() -> None:
    grid = TileGrid.plan(40, 300, tile=64, overlap=16)
    assert (grid.tile_height, grid.tile_width) == (40, 64)
    assert grid.ys == (0,) and len(grid) == len(grid.xs)


def test_blend_window_has_floor_and_peak() -> None:
    w = blend_window(64, 64, ramp=16, floor=0.05)
    assert w.min() >= 0.05**2 - 1e-9 and w.max() == 1.0
    assert w[32, 32] == 1.0 and w[0, 0] < w[8, 8]


def _pixelwise_model(batch: np.ndarray) -> np.ndarray:
    """A 'model' whose output at a pixel depends only on that pixel: tiling must be exact."""
    return np.concatenate([batch, 1 - 2 * batch], axis=1)


@pytest.mark.parametrize("shape", [(1, 50, 70), (1, 200, 130), (1, 257, 513)])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_stitching_reproduces_a_pixelwise_model(shape: tuple[int, ...], batch_size: int) -> None:
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    out = tiled_logits(image, _pixelwise_model, 2, tile=64, overlap=16, batch_size=batch_size)
    np.testing.assert_allclose(out, _pixelwise_model(image[None])[0], rtol=1e-5, atol=1e-6)


def test_single_tile_is_exactly_whole_frame_inference() -> None:
    image = np.random.default_rng(1).random((1, 60, 45), dtype=np.float32)
    calls = []

    def model(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape)
        return np.concatenate([batch * 3.7, -batch], axis=1)  # arbitrary, non-trivial values

    out = tiled_logits(image, model, 2, tile=64, overlap=16)
    assert calls == [(1, 1, 60, 45)]
    np.testing.assert_array_equal(out, model(image[None])[0])


def test_tiles_are_fixed_shape_and_batched() -> None:
    shapes = []
    image = np.zeros((1, 300, 200), np.float32)
    tiled_logits(
        image,
        lambda b: shapes.append(b.shape) or np.zeros((b.shape[0], 2, *b.shape[2:]), np.float32),
        2,
        tile=64,
        overlap=16,
        batch_size=4,
    )
    assert {s[1:] for s in shapes} == {(1, 64, 64)}
    assert all(s[0] <= 4 for s in shapes) and sum(s[0] for s in shapes) == len(
        TileGrid.plan(300, 200, 64, 16)
    )


def test_wrong_model_output_shape_is_reported() -> None:
    with pytest.raises(ValueError, match="logits of shape"):
        tiled_logits(np.zeros((1, 10, 10), np.float32), lambda b: b, 2, tile=8, overlap=2)
