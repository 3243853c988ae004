"""The acquisition-side API: a bounded stream that never raises into the camera thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from ernet.runtime import FrameStream, Segmenter, StreamResult


class GatedSegmenter:
    """Segments (thresholds) a frame only when the test opens the gate."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()

    def segment(self, frame: np.ndarray) -> np.ndarray:
        self.started.set()
        self.gate.wait(10)
        if frame.dtype == np.float64:
            raise RuntimeError("model failure")
        return (frame > 0).astype(np.uint8)


def _collect() -> tuple[list[StreamResult], object]:
    results: list[StreamResult] = []
    return results, results.append


@pytest.mark.parametrize("when_full,kept", [("drop_newest", [0, 1, 2]), ("drop_oldest", [0, 4, 5])])
def test_full_queue_policies_drop_and_count(when_full: str, kept: list[int]) -> None:
    seg = GatedSegmenter()
    results, on_result = _collect()
    stream = FrameStream(seg, on_result, maxsize=2, when_full=when_full)  # type: ignore[arg-type]
    assert stream.submit(np.ones((4, 4), np.uint16), tag=0)
    seg.started.wait(10)  # frame 0 is in the model; the queue holds 2 more
    accepted = [stream.submit(np.ones((4, 4), np.uint16), tag=i) for i in range(1, 6)]
    seg.gate.set()
    stats = stream.close()
    assert [r.tag for r in results] == kept
    assert stats.submitted == 6 and stats.completed == 3 and stats.dropped == 3 and stats.failed == 0
    assert accepted.count(False) == (3 if when_full == "drop_newest" else 0)
    assert all(r.latency_s >= 0 for r in results) and stats.latency_p99_s >= stats.latency_p50_s


def test_failures_are_counted_never_raised() -> None:
    seg = GatedSegmenter()
    seg.gate.set()

    def on_result(result: StreamResult) -> None:
        if result.tag == "bad callback":
            raise OSError("disk full")

    with FrameStream(seg, on_result) as stream:  # type: ignore[arg-type]
        assert stream.submit(np.zeros((4, 4)), tag="bad model")  # float64 -> the model raises
        assert stream.submit(np.ones((4, 4), np.uint8), tag="bad callback")
        assert stream.submit(np.ones((4, 4), np.uint8), tag="fine")
        assert stream.submit(object(), tag="not an array")  # type: ignore[arg-type]
    stats = stream.stats()
    assert stats.completed == 1 and stats.failed == 3 and (stats.last_error or "").startswith("TypeError")
    assert not stream.submit(np.ones((4, 4)), tag="after close")  # refused, not raised
    assert stream.stats().dropped == 1


def test_stream_gives_the_segmenter_result_in_order(tiny_onnx: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 4000, (6, 70, 90), dtype=np.uint16)
    seg = Segmenter(tiny_onnx, provider="cpu")
    results, on_result = _collect()
    with FrameStream(seg, on_result, maxsize=2) as stream:  # type: ignore[arg-type]
        for i, frame in enumerate(frames):
            stream.submit(frame, tag=i)
    assert [r.tag for r in results] == list(range(6))
    for r in results:
        np.testing.assert_array_equal(r.labels, seg.segment(frames[r.tag]))
