"""The tiler: fixed-shape tiles covering any frame, blended back exactly where they agree."""

from __future__ import annotations

import numpy as np
import pytest

from ernet.runtime.tiling import TileGrid, TilePlan, axis_starts, blend_window, stitch_bands, tiled_logits


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


def test_grid_pads_small_frames_up_to_one_tile() -> None:
    grid = TileGrid.plan(40, 300, tile=64, overlap=16)
    assert (grid.padded_height, grid.padded_width) == (64, 300)
    assert grid.ys == (0,) and len(grid) == len(grid.xs)
    assert grid.tile_pixels == len(grid) * 64 * 64


def test_blend_window_is_smooth_with_floor_and_peak() -> None:
    w = blend_window(64)
    assert w.shape == (64, 64) and w.min() > 0 and abs(w.max() - 1) < 0.01
    assert w[0, 32] < w[16, 32] < w[31, 31]
    np.testing.assert_allclose(w, w.T)
    assert blend_window(64, floor=0.2).min() == np.float32(0.2 * 0.2)
    # Along a tile's rim the weight still falls towards the corner: no floored plateau.
    assert (np.diff(blend_window(256)[0, :128]) > 0).sum() > 100


def _pixelwise_model(batch: np.ndarray) -> np.ndarray:
    """A 'model' whose output at a pixel depends only on that pixel: tiling must be exact."""
    return np.concatenate([batch, 1 - 2 * batch], axis=1)


@pytest.mark.parametrize("shape", [(1, 50, 70), (1, 200, 130), (1, 257, 513)])
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_stitching_reproduces_a_pixelwise_model(shape: tuple[int, ...], batch_size: int) -> None:
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    out = tiled_logits(image, _pixelwise_model, 2, TilePlan(64, 16, batch_size))
    np.testing.assert_allclose(out, _pixelwise_model(image[None])[0], rtol=1e-5, atol=1e-6)


def test_single_tile_is_exactly_whole_frame_inference() -> None:
    image = np.random.default_rng(1).random((1, 64, 64), dtype=np.float32)
    calls = []

    def model(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape)
        return np.concatenate([batch * 3.7, -batch], axis=1)  # arbitrary, non-trivial values

    out = tiled_logits(image, model, 2, TilePlan(64, 16))
    assert calls == [(1, 1, 64, 64)]
    np.testing.assert_array_equal(out, model(image[None])[0])


def test_small_frames_are_reflected_up_to_a_fixed_tile_shape() -> None:
    image = np.random.default_rng(2).random((1, 30, 45), dtype=np.float32)
    seen = []

    def model(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return np.concatenate([batch, batch.mean() - batch], axis=1)  # depends on the whole tile

    out = tiled_logits(image, model, 2, TilePlan(64, 16, fixed_shape=True))
    assert out.shape == (2, 30, 45)
    (tile,) = seen
    assert tile.shape == (1, 1, 64, 64)
    np.testing.assert_array_equal(tile[0, :, :30, :45], image)
    np.testing.assert_array_equal(tile[0, 0, 30, :45], image[0, 28])  # reflection, not zeros
    np.testing.assert_array_equal(out, model(tile)[0, :, :30, :45])


@pytest.mark.parametrize("shape", [(1, 64, 64), (1, 200, 130), (1, 257, 513), (1, 20, 300)])
@pytest.mark.parametrize("tile,overlap,batch_size", [(64, 16, 3), (64, 32, 16), (96, 0, 1)])
def test_bands_cover_the_frame_once_in_order(
    shape: tuple[int, ...], tile: int, overlap: int, batch_size: int
) -> None:
    image = np.random.default_rng(3).random(shape, dtype=np.float32)
    bands = list(stitch_bands(image, _pixelwise_model, 2, TilePlan(tile, overlap, batch_size)))
    starts = [y0 for y0, _ in bands]
    heights = [band.shape[1] for _, band in bands]
    assert starts[0] == 0 and all(a + h == b for a, h, b in zip(starts, heights, starts[1:], strict=False))
    assert starts[-1] + heights[-1] == shape[1]
    assert all(band.shape == (2, band.shape[1], shape[2]) for _, band in bands)
    assert max(heights) <= tile  # stitching holds about a tile row, never the whole frame


def test_bands_are_finished_before_later_tiles_run() -> None:
    """Band-wise stitching: the first band is out before the last tile row is computed."""
    calls = []

    def model(batch: np.ndarray) -> np.ndarray:
        calls.append(len(calls))
        return _pixelwise_model(batch)

    bands = stitch_bands(np.zeros((1, 640, 64), np.float32), model, 2, TilePlan(64, 16, batch=1))
    next(bands)
    assert len(calls) < len(TileGrid.plan(640, 64, 64, 16))


def test_tiles_are_fixed_shape_and_batched() -> None:
    shapes = []
    image = np.zeros((1, 300, 200), np.float32)
    tiled_logits(
        image,
        lambda b: shapes.append(b.shape) or np.zeros((b.shape[0], 2, *b.shape[2:]), np.float32),
        2,
        TilePlan(64, 16, batch=4),
    )
    assert {s[1:] for s in shapes} == {(1, 64, 64)}
    assert all(s[0] <= 4 for s in shapes) and sum(s[0] for s in shapes) == len(
        TileGrid.plan(300, 200, 64, 16)
    )


def test_wrong_model_output_shape_is_reported() -> None:
    with pytest.raises(ValueError, match="logits of shape"):
        tiled_logits(np.zeros((1, 10, 10), np.float32), lambda b: b, 2, TilePlan(8, 2))


@pytest.mark.parametrize("length", [2, 64, 66, 130, 1000])
@pytest.mark.parametrize("tile,overlap,multiple", [(64, 16, 2), (64, 17, 8), (96, 30, 32)])
def test_starts_of_a_windowed_model_are_multiples_and_still_overlap(
    length: int, tile: int, overlap: int, multiple: int
) -> None:
    padded = -(-length // multiple) * multiple
    starts = axis_starts(max(padded, tile), tile, overlap, multiple)
    assert all(s % multiple == 0 for s in starts)
    assert starts[-1] + tile == max(padded, tile)  # the last tile ends at the padded edge
    for a, b in zip(starts, starts[1:], strict=False):
        assert a + tile - b >= overlap  # the stride shrinks to a multiple: overlap only grows


def _window_model(batch: np.ndarray) -> np.ndarray:
    """A 'model' whose output is the mean of each 2 x 2 window anchored at the tile origin,
    like a windowed transformer: exact tiling needs tiles at even origins."""
    n, c, h, w = batch.shape
    means = batch.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    up = np.repeat(np.repeat(means, 2, axis=2), 2, axis=3)
    return np.concatenate([up, -up], axis=1)


@pytest.mark.parametrize("shape", [(1, 130, 171), (1, 51, 63)])
def test_tiles_at_multiples_reproduce_a_windowed_model(shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(4).random(shape, dtype=np.float32)
    plan = TilePlan(64, 15, batch=3, multiple_of=2)  # an odd overlap: the stride is made even
    grid = plan.grid(*shape[1:])
    assert grid.padded_height % 2 == 0 and grid.padded_width % 2 == 0
    out = tiled_logits(image, _window_model, 2, plan)
    padded = np.pad(
        image, ((0, 0), (0, grid.padded_height - shape[1]), (0, grid.padded_width - shape[2])), mode="reflect"
    )
    expected = _window_model(padded[None])[0, :, : shape[1], : shape[2]]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    odd = TilePlan(64, 15, batch=3)  # without the multiple, tiles start at odd origins...
    if any(y % 2 for y in odd.grid(*shape[1:]).ys):  # ...where the frame needs several tiles
        assert not np.allclose(tiled_logits(image, _window_model, 2, odd), expected, atol=1e-3)


def test_a_tile_that_is_not_a_multiple_is_refused() -> None:
    with pytest.raises(ValueError, match="not a multiple of 32"):
        TilePlan(100, 10, multiple_of=32)


@pytest.mark.parametrize("fixed_shape", [False, True])
def test_a_tile_larger_than_the_frame_shrinks_unless_the_shape_is_fixed(fixed_shape: bool) -> None:
    """--tile 2000 on a small frame runs one frame-sized tile, not a padded 2000² one;
    a TensorRT profile (fixed shape) keeps its tile."""
    shapes: list[tuple[int, ...]] = []

    def model(batch: np.ndarray) -> np.ndarray:
        shapes.append(batch.shape)
        return np.concatenate([batch, -batch], axis=1)

    image = np.random.default_rng(0).random((1, 100, 150), dtype=np.float32)
    plan = TilePlan(512, 128, batch=2, multiple_of=8, fixed_shape=fixed_shape)
    logits = tiled_logits(image, model, 2, plan)
    assert shapes == ([(1, 1, 512, 512)] if fixed_shape else [(1, 1, 152, 152)])
    assert np.array_equal(logits[0], image[0]) and logits.shape == (2, 100, 150)
    assert plan.fitted(1000, 1000) is plan  # a frame larger than the tile: the plan as it is


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_model_returning_non_finite_logits_is_an_error_not_an_empty_mask(bad: float) -> None:
    def model(batch: np.ndarray) -> np.ndarray:
        logits = np.concatenate([batch, -batch], axis=1)
        logits[0, 1, 3, 3] = bad
        return logits

    image = np.random.default_rng(0).random((1, 100, 100), dtype=np.float32)
    with pytest.raises(ValueError, match="model returned NaN or infinite logits"):
        tiled_logits(image, model, 2, TilePlan(64, 16))


def test_a_growing_plan_runs_frames_whole_while_they_fit_its_budget() -> None:
    plan = TilePlan(64, 16, batch=4, multiple_of=8, max_pixels=200 * 200)
    assert plan.fitted(150, 190) == TilePlan(192, 16, 4, 8)  # one tile over the padded longer side
    assert plan.fitted(20, 30) == TilePlan(32, 16, 4, 8)
    assert plan.fitted(20, 10) == TilePlan(24, 16, 4, 8)
    assert plan.fitted(20, 10).fitted(5, 5) == TilePlan(8, 7, 4, 8)  # fitted plans only shrink
    # larger: the largest tiles of which a batch (4) fits the budget, a multiple of 8
    assert plan.largest_tile == 96 and plan.fitted(300, 300) == TilePlan(96, 16, 4, 8)
    assert len(plan.fitted(300, 300).grid(300, 300)) == 16
    assert TilePlan(128, 32, max_pixels=100).largest_tile == 128  # never below the training crop
    assert plan.summary() == "whole frames up to 200x200, else tiles of 96, overlap 16, batch 4"
    assert TilePlan(64, 16).summary() == "tile 64, overlap 16, batch 4"
    with pytest.raises(ValueError, match="only a plan of variable tile shape may grow"):
        TilePlan(64, 16, fixed_shape=True, max_pixels=10_000)


def test_growing_tiles_give_the_whole_frame_output() -> None:
    """The default on the CPU: a frame within the budget is the model's own output on it."""
    image = np.random.default_rng(1).random((1, 100, 150), dtype=np.float32)
    shapes: list[tuple[int, ...]] = []

    def model(batch: np.ndarray) -> np.ndarray:
        shapes.append(batch.shape)
        return np.concatenate([batch, -batch], axis=1)

    logits = tiled_logits(image, model, 2, TilePlan(32, 8, batch=4, max_pixels=150 * 150))
    assert shapes == [(1, 1, 150, 150)] and np.array_equal(logits[0], image[0])
