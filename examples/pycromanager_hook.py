"""Segment every frame of a pycromanager acquisition as it arrives.

pycromanager calls ``image_process_fn(image, metadata)`` serially on one thread
and aborts the acquisition if it raises; the image it returns is saved, so it must
keep the camera's dtype. The hook below hands a copy of each frame to a bounded
:class:`~ernet.runtime.FrameStream` and returns the image untouched: the camera is
never slowed by more than a queue insertion (``when_full="drop_oldest"``) and never
broken by the model.

Run with Micro-Manager open (its demo configuration will do)::

    python examples/pycromanager_hook.py OUT_DIR
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from acquisition_common import saving_stream

from ernet.runtime import FrameStream, Segmenter

ImageHook = Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]]


def frame_tag(metadata: dict[str, Any]) -> str:
    """A file-name tag from pycromanager's metadata axes, e.g. ``time-3_channel-0``."""
    axes = metadata.get("Axes", {})
    return "_".join(f"{k}-{v}" for k, v in sorted(axes.items())) or "frame"


def make_image_process_fn(stream: FrameStream) -> ImageHook:
    """pycromanager's ``image_process_fn``: queue the frame, pass the image on unchanged."""

    def image_process_fn(image: Any, metadata: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        stream.submit(image, tag=frame_tag(metadata))
        return image, metadata

    return image_process_fn


def main(out_dir: Path) -> None:
    from pycromanager import Acquisition, multi_d_acquisition_events

    with Segmenter() as segmenter, saving_stream(segmenter, out_dir, when_full="drop_oldest") as stream:
        with Acquisition(
            directory=str(out_dir), name="ernet", image_process_fn=make_image_process_fn(stream)
        ) as acq:
            acq.acquire(multi_d_acquisition_events(num_time_points=20, time_interval_s=0.5))
        print(stream.stats())


if __name__ == "__main__":
    main(Path(sys.argv[1]))
