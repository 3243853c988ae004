"""Segment every frame of a pymmcore-plus MDA as it arrives.

pymmcore-plus emits ``frameReady(image, event, metadata)`` for each frame and
relays frames through an unbounded queue, so a slow handler grows memory and
latency without limit. The handler below only queues a copy into a bounded
:class:`~ernet.runtime.FrameStream` (``when_full="drop_oldest"``: results stay
current, memory stays flat) and never raises into the acquisition.

Run with Micro-Manager's adapters installed (``mmcore install``)::

    python examples/pymmcore_plus_handler.py OUT_DIR
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acquisition_common import saving_stream

from ernet.runtime import FrameStream, Segmenter

FrameHandler = Callable[[Any, Any, dict[str, Any]], None]


def event_tag(event: Any) -> str:
    """A file-name tag from a ``useq.MDAEvent``'s index, e.g. ``c-0_t-3``."""
    index = dict(getattr(event, "index", {}) or {})
    return "_".join(f"{k}-{v}" for k, v in sorted(index.items())) or "frame"


def make_frame_ready_handler(stream: FrameStream) -> FrameHandler:
    """A ``frameReady`` handler that queues the frame for segmentation."""

    def on_frame_ready(image: Any, event: Any, metadata: dict[str, Any]) -> None:
        stream.submit(image, tag=event_tag(event))

    return on_frame_ready


def main(out_dir: Path) -> None:
    from pymmcore_plus import CMMCorePlus
    from useq import MDASequence

    core = CMMCorePlus.instance()
    core.loadSystemConfiguration()  # the demo configuration
    with Segmenter() as segmenter, saving_stream(segmenter, out_dir, when_full="drop_oldest") as stream:
        core.mda.events.frameReady.connect(make_frame_ready_handler(stream))
        core.run_mda(MDASequence(time_plan={"interval": 0.1, "loops": 20}), block=True)
        print(stream.stats())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
