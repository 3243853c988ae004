"""Segmenting frames inside acquisition software as they are acquired.

- :mod:`.plan` — what an acquisition will deliver (frames per position, their axes);
- :mod:`.stores` — where labels go as they arrive (:class:`TiffLabelStore`);
- :mod:`.live` — :class:`LiveSegmentation`, the engine-independent core (bounded queue,
  counters, latency, callback and store);
- :mod:`.pymmcore` — ``attach(core)`` for pymmcore-plus MDAs;
- :mod:`.pycromanager` — an ``image_process_fn`` hook for pycromanager.

Nothing here imports an acquisition engine: each hook takes the engine's objects as
given.
"""

from .live import LiveResult, LiveSegmentation, LiveStats, LiveSummary
from .plan import AcquisitionPlan, PositionPlan, frame_index
from .pymmcore import MDASegmentation, attach
from .stores import LabelStore, TiffLabelStore

__all__ = [
    "AcquisitionPlan",
    "LabelStore",
    "LiveResult",
    "LiveSegmentation",
    "LiveStats",
    "LiveSummary",
    "MDASegmentation",
    "PositionPlan",
    "TiffLabelStore",
    "attach",
    "frame_index",
]
