"""Segmenting frames as a microscope acquires them, without ever slowing or breaking it.

Acquisition loops do not throttle themselves: pycromanager calls its image hook
serially on one thread (an exception aborts the acquisition) and pymmcore-plus relays
frames through an unbounded queue. :class:`FrameStream` puts a bounded queue between
the camera and the model, with an explicit policy when it is full, and counts what
happened; ``submit`` never raises.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import numpy as np

from .segmenter import Segmenter

log = logging.getLogger(__name__)
WhenFull = Literal["block", "drop_oldest", "drop_newest"]
_STOP = object()


@dataclass(frozen=True)
class StreamResult:
    """One segmented frame: its tag from ``submit``, class ids, and seconds since submission."""

    tag: Hashable
    labels: np.ndarray
    latency_s: float


@dataclass(frozen=True)
class StreamStats:
    """Counters of a stream, and the latency (submit to result) of segmented frames."""

    submitted: int
    completed: int
    dropped: int
    failed: int
    queued: int
    latency_p50_s: float
    latency_p95_s: float
    latency_p99_s: float
    last_error: str | None


class FrameStream:
    """Segment submitted frames on a worker thread, in order, through a bounded queue.

    ``when_full``: ``block`` waits for room (the acquisition slows to the model's pace;
    nothing is lost), ``drop_oldest`` discards the oldest waiting frame (results stay
    current), ``drop_newest`` discards the frame being submitted. ``on_result`` is
    called on the worker thread with each :class:`StreamResult`; its exceptions, like
    the model's, are counted and logged, never raised into the caller.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        on_result: Callable[[StreamResult], Any],
        *,
        maxsize: int = 4,
        when_full: WhenFull = "block",
        keep_latencies: int = 10_000,
    ) -> None:
        if when_full not in ("block", "drop_oldest", "drop_newest"):
            raise ValueError(f"unknown when_full policy {when_full!r}")
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.segmenter, self.on_result, self.when_full = segmenter, on_result, when_full
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._lock = threading.Lock()
        self._counts = {"submitted": 0, "completed": 0, "dropped": 0, "failed": 0}
        self._latencies: list[float] = []
        self._keep = keep_latencies
        self._last_error: str | None = None
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="ernet-stream", daemon=True)
        self._worker.start()

    def submit(self, frame: np.ndarray, tag: Hashable = None) -> bool:
        """Queue ``frame`` (copied) for segmentation; False if it was dropped. Never raises."""
        try:
            item = (tag, np.array(frame, copy=True), time.perf_counter())
            with self._lock:
                if self._closed:
                    self._counts["dropped"] += 1
                    return False
                self._counts["submitted"] += 1
            if self.when_full == "block":
                self._queue.put(item)
                return True
            while True:
                try:
                    self._queue.put_nowait(item)
                    return True
                except queue.Full:
                    if self.when_full == "drop_newest":
                        self._count("dropped")
                        return False
                    try:
                        oldest = self._queue.get_nowait()  # drop_oldest
                    except queue.Empty:
                        continue
                    self._queue.task_done()
                    if oldest is _STOP:  # closed meanwhile: keep the stop marker
                        self._queue.put(_STOP)
                        self._count("dropped")
                        return False
                    self._count("dropped")
        except Exception as exc:  # nothing may reach the acquisition thread
            self._record_failure(exc)
            return False

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                tag, frame, submitted = item
                try:
                    labels = self.segmenter.segment(frame)
                    latency = time.perf_counter() - submitted
                    self.on_result(StreamResult(tag, labels, latency))
                except Exception as exc:
                    self._record_failure(exc)
                    continue
                with self._lock:
                    self._counts["completed"] += 1
                    self._latencies.append(latency)
                    del self._latencies[: -self._keep]
            finally:
                self._queue.task_done()

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _record_failure(self, exc: BaseException) -> None:
        with self._lock:
            self._counts["failed"] += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
        log.warning("frame not segmented: %s", self._last_error)

    def stats(self) -> StreamStats:
        """A snapshot of the counters and latency percentiles (NaN before any result)."""
        with self._lock:
            latencies = np.array(self._latencies) if self._latencies else np.array([np.nan])
            p50, p95, p99 = (float(v) for v in np.percentile(latencies, [50, 95, 99]))
            return StreamStats(
                **self._counts,
                queued=self._queue.qsize(),
                latency_p50_s=p50,
                latency_p95_s=p95,
                latency_p99_s=p99,
                last_error=self._last_error,
            )

    def close(self, wait: bool = True) -> StreamStats:
        """Stop accepting frames; with ``wait``, finish the queued ones first. Returns the stats."""
        with self._lock:
            already, self._closed = self._closed, True
        if not already:
            if not wait:
                while True:
                    try:
                        self._queue.get_nowait()
                        self._queue.task_done()
                        self._count("dropped")
                    except queue.Empty:
                        break
            self._queue.put(_STOP)
            self._worker.join()
        return self.stats()

    def __enter__(self) -> FrameStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(wait=exc_type is None)
