"""Live segmentation of one acquisition at a time, whatever engine delivers the frames.

:class:`LiveSegmentation` is what the engine hooks (:mod:`.pymmcore`,
:mod:`.pycromanager`) and plain Python loops drive: ``start`` with the acquisition's
plan, ``receive`` each frame (it only enqueues, never raises), ``finish`` at the end.
Frames go through a bounded :class:`~ernet.runtime.FrameStream`; each result keeps its
frame index and metadata, goes to the user's callback and/or a :class:`~.stores.LabelStore`,
and everything that happened is counted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..io import atomic_output
from ..segmenter import Segmenter
from ..stream import FrameStream, StreamResult, WhenFull
from .plan import AcquisitionPlan, Index
from .stores import LabelStore

log = logging.getLogger(__name__)
OnCancel = Literal["drain", "discard"]
#: Frames that may wait for the model by default: a few seconds of a fast camera,
#: little memory (a 2048x2048 uint16 frame is 8 MiB).
DEFAULT_QUEUE = 8


@dataclass(frozen=True)
class LiveResult:
    """One segmented frame: its index (``{"t": 3, "p": 1, ...}``), class ids, the
    engine's metadata, and the seconds from its arrival to this result."""

    index: dict[str, int]
    labels: np.ndarray
    metadata: Mapping[str, Any]
    latency_s: float


@dataclass(frozen=True)
class LiveStats:
    """Counters of the current (or last) acquisition and the arrival-to-result latency."""

    received: int
    skipped: int
    segmented: int
    dropped: int
    failed: int
    queued: int
    latency_p50_s: float
    latency_p99_s: float
    last_error: str | None

    def line(self) -> str:
        """A one-line status."""
        return (
            f"{self.received} frames received, {self.segmented} segmented, {self.dropped} dropped, "
            f"{self.failed} failed, {self.queued} queued; latency p50 {self.latency_p50_s * 1e3:.0f} ms, "
            f"p99 {self.latency_p99_s * 1e3:.0f} ms"
        )


@dataclass(frozen=True)
class LiveSummary:
    """How an acquisition ended: final counters, whether it was cancelled, and each
    output (path, axes, frames segmented and missing)."""

    stats: LiveStats
    cancelled: bool
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def complete(self) -> bool:
        """Every planned frame segmented and stored, nothing failed."""
        return self.error is None and all(not o["missing"] for o in self.outputs) and self.stats.failed == 0


@dataclass(frozen=True, eq=False)
class _Tag:
    index: Index
    metadata: Mapping[str, Any]


class LiveSegmentation:
    """Segment an acquisition's frames as they arrive, without ever blocking or breaking it.

    ``on_result`` (called on the segmentation thread with each :class:`LiveResult`) and
    ``store`` receive the results; ``channel`` keeps only frames of that channel
    configuration (others are counted as skipped). ``maxsize`` and ``when_full`` set
    the queue and its policy (``drop_oldest``: results stay current and memory flat;
    ``block``: the acquisition waits, nothing is lost). At the end the queue drains, or
    with ``on_cancel="discard"`` a cancelled acquisition's waiting frames are dropped;
    either way the store's files are complete. With ``summary``, the
    :class:`LiveSummary` of each acquisition is also written there as JSON.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        *,
        on_result: Callable[[LiveResult], Any] | None = None,
        store: LabelStore | None = None,
        channel: str | None = None,
        maxsize: int = DEFAULT_QUEUE,
        when_full: WhenFull = "drop_oldest",
        on_cancel: OnCancel = "drain",
        summary: Path | None = None,
    ) -> None:
        if on_cancel not in ("drain", "discard"):
            raise ValueError(f"unknown on_cancel policy {on_cancel!r}")
        self.segmenter, self.on_result, self.store, self.channel = segmenter, on_result, store, channel
        self.maxsize, self.when_full = maxsize, when_full
        self.on_cancel, self.summary_path = on_cancel, summary
        self._lock = threading.Lock()
        self._stream: FrameStream | None = None
        self._received = self._skipped = 0
        self._error: str | None = None
        self._last: LiveStats | None = None

    def start(self, plan: AcquisitionPlan, frame_shape: tuple[int, int]) -> None:
        """Begin an acquisition: open the store, start the segmentation thread."""
        with self._lock:
            if self._stream is not None:
                raise RuntimeError("an acquisition is already running; finish it first")
            self._received = self._skipped = 0
            self._error = None
        if self.store is not None:
            description = {**self.segmenter.describe(frame_shape), "channel": plan.channel}
            self.store.begin(plan, frame_shape, description)
        stream = FrameStream(self.segmenter, self._deliver, maxsize=self.maxsize, when_full=self.when_full)
        with self._lock:
            self._stream = stream

    @property
    def running(self) -> bool:
        """Whether an acquisition has started and not finished."""
        return self._stream is not None

    def receive(
        self,
        image: np.ndarray,
        index: Index,
        channel: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Queue one frame (copied); False if it was skipped or dropped. Never raises."""
        try:
            with self._lock:
                self._received += 1
                stream = self._stream
                if stream is None or (self.channel is not None and channel != self.channel):
                    self._skipped += 1
                    return False
            return stream.submit(image, tag=_Tag(index, dict(metadata or {})))
        except Exception as exc:  # nothing may reach the acquisition thread
            self._error = f"{type(exc).__name__}: {exc}"
            log.warning("frame not queued: %s", self._error)
            return False

    def _deliver(self, result: StreamResult) -> None:
        tag = result.tag
        assert isinstance(tag, _Tag)
        if self.store is not None:
            self.store.put(tag.index, result.labels)
        if self.on_result is not None:
            self.on_result(LiveResult(dict(tag.index), result.labels, tag.metadata, result.latency_s))

    def stats(self) -> LiveStats:
        """A snapshot of the counters (of the last acquisition once it has finished)."""
        with self._lock:
            stream, received, skipped = self._stream, self._received, self._skipped
            if stream is None and self._last is not None:
                return self._last
        if stream is None:
            return LiveStats(received, skipped, 0, 0, 0, 0, float("nan"), float("nan"), self._error)
        s = stream.stats()
        return LiveStats(
            received,
            skipped,
            s.completed,
            s.dropped,
            s.failed,
            s.queued,
            s.latency_p50_s,
            s.latency_p99_s,
            s.last_error or self._error,
        )

    def finish(self, cancelled: bool = False) -> LiveSummary:
        """End the acquisition: drain the queue (or discard it, if cancelled and so asked),
        complete the store's files, and return the summary."""
        with self._lock:
            stream = self._stream
        if stream is None:
            raise RuntimeError("no acquisition is running")
        stream.close(wait=not (cancelled and self.on_cancel == "discard"))
        stats = self.stats()
        outputs: list[dict[str, Any]] = []
        error = None
        if self.store is not None:
            try:
                outputs = self.store.finish()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.error("labels not saved: %s", error)
        with self._lock:
            self._stream, self._last = None, stats
        summary = LiveSummary(stats, cancelled, outputs, error)
        if self.summary_path is not None:
            with atomic_output(self.summary_path) as tmp:
                record = {**asdict(summary), "finished": time.time()}
                for key in ("latency_p50_s", "latency_p99_s"):  # NaN before any result: not JSON
                    if not np.isfinite(record["stats"][key]):
                        record["stats"][key] = None
                tmp.write_text(json.dumps(record, indent=1) + "\n")
        return summary
