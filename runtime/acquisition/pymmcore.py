"""Live segmentation inside a pymmcore-plus acquisition (MDA), in one call.

``attach(core, ...)`` connects to ``core.mda.events`` (``sequenceStarted``,
``frameReady``, ``sequenceCanceled``, ``sequenceFinished``) of a ``CMMCorePlus`` (or
anything with those signals). The handlers only enqueue: a frame costs the acquisition
thread a copy, never a model call, and no exception reaches it. When the sequence
ends, the queue drains and the files are completed on a thread of their own;
:meth:`MDASegmentation.wait` returns the :class:`~.live.LiveSummary`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..segmenter import Segmenter
from ..spec import RunSpec
from ..stream import WhenFull
from .live import DEFAULT_QUEUE, LiveResult, LiveSegmentation, LiveStats, LiveSummary, OnCancel
from .plan import AcquisitionPlan, event_channel, frame_index
from .stores import TiffLabelStore

log = logging.getLogger(__name__)


class MDASegmentation:
    """A :class:`~.live.LiveSegmentation` connected to the MDA signals of ``core`` (a
    ``CMMCorePlus``: its ``mda.events``, image size and pixel size); ``detach`` to stop."""

    def __init__(self, core: Any, live: LiveSegmentation) -> None:
        self.live, self._core = live, core
        events = core.mda.events
        self._cancelled = False
        self._done = threading.Event()
        self._done.set()  # nothing to wait for before the first sequence
        self._finisher: threading.Thread | None = None
        self._summary: LiveSummary | None = None
        self._connections = [
            (events.sequenceStarted, self._on_started),
            (events.frameReady, self._on_frame),
            (events.sequenceCanceled, self._on_canceled),
            (events.sequenceFinished, self._on_finished),
        ]
        for signal, slot in self._connections:
            signal.connect(slot)

    def _on_started(self, sequence: Any, *_: Any) -> None:
        try:
            self._done.clear()
            self._cancelled, self._summary, self._finisher = False, None, None
            plan = AcquisitionPlan.of(sequence, self.live.channel, self._pixel_size_um())
            self.live.start(plan, self._frame_shape())
        except Exception as exc:  # the acquisition runs on; its frames are not segmented
            log.error("live segmentation not started: %s: %s", type(exc).__name__, exc)
            self._summary = LiveSummary(self.live.stats(), False, error=f"not started: {exc}")
            self._done.set()

    def _frame_shape(self) -> tuple[int, int]:
        return int(self._core.getImageHeight()), int(self._core.getImageWidth())

    def _pixel_size_um(self) -> float | None:
        size = float(self._core.getPixelSizeUm())
        return size if size > 0 else None  # 0: no pixel size configured

    def _on_frame(self, image: np.ndarray, event: Any, metadata: Any = None) -> None:
        try:
            self.live.receive(image, frame_index(event.index), event_channel(event), metadata)
        except Exception as exc:
            log.warning("frame not queued: %s", exc)

    def _on_canceled(self, *_: Any) -> None:
        self._cancelled = True

    def _on_finished(self, *_: Any) -> None:
        if not self.live.running:
            return
        self._finisher = threading.Thread(target=self._finish, name="ernet-mda-finish", daemon=True)
        self._finisher.start()

    def _finish(self) -> None:
        try:
            self._summary = self.live.finish(cancelled=self._cancelled)
        except Exception as exc:
            log.error("live segmentation not finished: %s: %s", type(exc).__name__, exc)
            self._summary = LiveSummary(self.live.stats(), self._cancelled, error=str(exc))
        finally:
            self._done.set()

    def stats(self) -> LiveStats:
        """Counters now: frames received, segmented, dropped, failed, queued; latency."""
        return self.live.stats()

    def wait(self, timeout: float | None = None) -> LiveSummary | None:
        """Wait until the last sequence's results are complete; its summary (None on timeout
        or before any sequence)."""
        return self._summary if self._done.wait(timeout) else None

    def detach(self, timeout: float | None = None) -> LiveSummary | None:
        """Disconnect from the MDA; a running sequence is finished first (queue drained)."""
        for signal, slot in self._connections:
            signal.disconnect(slot)
        if self.live.running and self._finisher is None:
            self._finish()
        return self.wait(timeout)


def attach(
    core: Any,
    segmenter: Segmenter | RunSpec | None = None,
    *,
    out: Path | str | None = None,
    prefix: str = "mda",
    overwrite: bool = False,
    on_result: Callable[[LiveResult], Any] | None = None,
    channel: str | None = None,
    maxsize: int = DEFAULT_QUEUE,
    when_full: WhenFull = "drop_oldest",
    on_cancel: OnCancel = "drain",
) -> MDASegmentation:
    """Segment every frame of ``core``'s MDAs as they arrive.

    ``segmenter``: a :class:`~ernet.runtime.Segmenter`, a :class:`~ernet.runtime.RunSpec`,
    or None for the embedded default model. Results go to ``on_result`` and, with
    ``out``, to ``OUT/PREFIX_pN_labels.tif`` per position (axes from the sequence) and
    ``OUT/PREFIX_summary.json``. ``channel``: segment only this channel configuration.
    Each MDA writes the same names: a later MDA replaces them with ``overwrite``, else its
    frames are not segmented (the summary says why); attach again with another
    ``prefix`` to keep both.
    """
    if not isinstance(segmenter, Segmenter):
        segmenter = Segmenter(segmenter)
    store = TiffLabelStore(Path(out), prefix, overwrite=overwrite) if out is not None else None
    live = LiveSegmentation(
        segmenter,
        on_result=on_result,
        store=store,
        channel=channel,
        maxsize=maxsize,
        when_full=when_full,
        on_cancel=on_cancel,
        summary=Path(out) / f"{prefix}_summary.json" if out is not None else None,
    )
    return MDASegmentation(core, live)
