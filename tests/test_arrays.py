"""segment_array: n-D arrays with named axes in, labels (and probabilities) out, frame by
frame as Segmenter.segment gives them, with progress and cancellation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ernet.runtime import Cancelled, RunSpec, Segmenter, segment_array, segment_array_steps
from ernet.runtime.errors import InputError
from ernet.runtime.preprocess import stack_range


@pytest.fixture(scope="module")
def seg(tiny_onnx: Path) -> Segmenter:
    return Segmenter(RunSpec(tiny_onnx, "cpu"))


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    data = np.random.default_rng(0).integers(0, 3000, (2, 3, 40, 50), dtype=np.uint16)  # T Z Y X
    data[1] //= 3
    return data


def test_each_frame_is_what_segment_gives(seg: Segmenter, stack: np.ndarray) -> None:
    result = segment_array(seg, stack, "TZYX")
    assert result.axes == "TZYX" and result.labels.shape == stack.shape and result.labels.dtype == np.uint8
    assert result.probabilities is None
    for t in range(2):
        for z in range(3):
            np.testing.assert_array_equal(result.labels[t, z], seg.segment(stack[t, z]))


def test_small_pieces_are_dropped_as_the_segmenter_says(tiny_onnx: Path, stack: np.ndarray) -> None:
    from ernet.runtime.postprocess import without_small_pieces

    plain_seg = Segmenter(RunSpec(tiny_onnx, "cpu"))
    assert plain_seg.min_object_size == 0  # the tiny model records none: every piece kept
    plain = segment_array(plain_seg, stack, "TZYX", probabilities="float32")
    for size in (30, 10**6):
        result = segment_array(
            Segmenter(RunSpec(tiny_onnx, "cpu", min_object_size=size)), stack, "TZYX", probabilities="float32"
        )
        for t in range(2):
            for z in range(3):
                expected = without_small_pieces(plain.labels[t, z], size)
                np.testing.assert_array_equal(result.labels[t, z], expected)
        np.testing.assert_array_equal(result.probabilities, plain.probabilities)
    assert plain.labels.any() and not result.labels.any()  # larger than any piece: all dropped


def test_axes_in_any_order_and_probabilities(seg: Segmenter, stack: np.ndarray) -> None:
    moved = np.transpose(stack, (2, 0, 3, 1))  # Y T X Z
    result = segment_array(seg, moved, "ytxz", probabilities="uint8")
    assert result.axes == "YTXZ" and result.labels.shape == moved.shape
    np.testing.assert_array_equal(result.labels[:, 1, :, 2], seg.segment(stack[1, 2]))
    assert result.probability_axes == "TZCYX" and result.probabilities is not None
    assert result.probabilities.shape == (2, 3, 2, 40, 50) and result.probabilities.dtype == np.uint8
    np.testing.assert_array_equal(result.probabilities[1, 2], seg.probabilities(stack[1, 2], dtype="uint8"))


def test_a_channel_is_chosen_for_a_one_channel_model(seg: Segmenter, stack: np.ndarray) -> None:
    rgb = np.stack([stack[0, 0], stack[0, 1], stack[0, 2]], axis=-1)  # Y X S
    with pytest.raises(InputError, match="3 channels \\(axis 'S'\\).*channel="):
        segment_array(seg, rgb, "YXS")
    result = segment_array(seg, rgb, "YXS", channel=1)
    assert result.axes == "YX"
    np.testing.assert_array_equal(result.labels, seg.segment(stack[0, 1]))
    with pytest.raises(InputError, match="channel 3 is outside the 3 channels"):
        segment_array(seg, rgb, "YXS", channel=3)


def test_stack_normalisation(seg: Segmenter, stack: np.ndarray) -> None:
    result = segment_array(seg, stack, "TZYX", normalize="stack")
    value_range = stack_range(seg.normalization, stack.reshape(-1, 40, 50))
    np.testing.assert_array_equal(result.labels[1, 0], seg.segment(stack[1, 0], value_range))
    assert not np.array_equal(result.labels, segment_array(seg, stack, "TZYX").labels)


def test_a_lazy_array_is_read_one_frame_at_a_time(seg: Segmenter, stack: np.ndarray) -> None:
    class Lazy:
        """Indexable like a dask or zarr array; records what is read."""

        shape, dtype = stack.shape, stack.dtype

        def __init__(self) -> None:
            self.reads: list[tuple[object, ...]] = []

        def __getitem__(self, key: tuple[object, ...]) -> np.ndarray:
            self.reads.append(key)
            return stack[key]

    lazy = Lazy()
    result = segment_array(seg, lazy, "TZYX")
    np.testing.assert_array_equal(result.labels, segment_array(seg, stack, "TZYX").labels)
    assert len(lazy.reads) == 6 and all(key[2:] == (slice(None), slice(None)) for key in lazy.reads)


def test_progress_and_cancellation(seg: Segmenter, stack: np.ndarray) -> None:
    seen: list[tuple[int, int]] = []
    segment_array(seg, stack, "TZYX", on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 6) for i in range(1, 7)]
    seen.clear()
    with pytest.raises(Cancelled, match="after 2 of 6 frames"):
        segment_array(
            seg, stack, "TZYX", on_progress=lambda d, t: seen.append((d, t)), cancelled=lambda: len(seen) >= 2
        )
    assert seen == [(1, 6), (2, 6)]
    with pytest.raises(Cancelled, match="before the first frame"):
        segment_array(seg, stack, "TZYX", cancelled=lambda: True)


def test_steps_yield_progress_return_the_result_and_stop_when_closed(
    seg: Segmenter, stack: np.ndarray
) -> None:
    steps = segment_array_steps(seg, stack, "TZYX", probabilities="uint8")
    seen = []
    with pytest.raises(StopIteration) as finished:
        while True:
            seen.append(next(steps))
    assert seen == [(i, 6) for i in range(1, 7)]
    expected = segment_array(seg, stack, "TZYX", probabilities="uint8")
    np.testing.assert_array_equal(finished.value.value.labels, expected.labels)
    np.testing.assert_array_equal(finished.value.value.probabilities, expected.probabilities)
    early = segment_array_steps(seg, stack, "TZYX")
    assert next(early) == (1, 6)
    early.close()  # a closed generator is done: nothing more comes
    with pytest.raises(StopIteration):
        next(early)


@pytest.mark.parametrize(
    "axes,shape,message",
    [
        ("TYX", (40, 50), "do not name the 2 axes"),
        ("ZZX", (2, 40, 50), "do not name"),
        ("TZX", (2, 40, 50), "have no Y and X"),
        ("CSYX", (2, 2, 40, 50), "two channel axes"),
        ("TYX", (0, 40, 50), "empty"),
    ],
)
def test_bad_axes_are_one_clear_error(
    seg: Segmenter, axes: str, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        segment_array(seg, np.zeros(shape, np.uint8), axes)


def test_segment_dask_without_a_cluster(seg: Segmenter, tiny_onnx: Path, stack: np.ndarray) -> None:
    """On Dask's local threaded scheduler (no distributed client): what segment_array gives."""
    da = pytest.importorskip("dask.array")
    from ernet.runtime.cluster import segment_dask

    lazy = segment_dask(da.from_array(stack, chunks=(1, 1, 40, 50)), "TZYX", RunSpec(tiny_onnx, "cpu"))
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), segment_array(seg, stack, "TZYX").labels)
