"""Live segmentation inside a pycromanager acquisition: an ``image_process_fn`` hook.

pycromanager calls ``image_process_fn(image, metadata)`` serially on its acquisition
thread, aborts the acquisition if it raises, and saves the image it returns. The hook
only hands a copy to a started :class:`~.live.LiveSegmentation` and returns the image
and metadata unchanged. pycromanager needs a running Micro-Manager (Java), so this
hook is tested through that documented callback contract alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .live import LiveSegmentation
from .plan import Index

#: pycromanager's axis names in the metadata's ``Axes`` and their useq names.
AXES = {"time": "t", "z": "z", "channel": "c", "position": "p"}

ImageProcessFn = Callable[[Any, dict[str, Any]], tuple[Any, dict[str, Any]]]


def metadata_index(metadata: Mapping[str, Any], channels: Sequence[str] = ()) -> tuple[Index, str | None]:
    """A frame's index and channel name from pycromanager metadata (``{"Axes": {"time": 3,
    "channel": "DAPI"}}``); a named channel is numbered by its place in ``channels``."""
    index: dict[str, int] = {}
    channel = None
    for axis, value in dict(metadata.get("Axes", {})).items():
        name = AXES.get(str(axis), str(axis))
        if isinstance(value, str):
            channel = value
            value = list(channels).index(value) if value in channels else 0
        index[name] = int(value)
    return tuple(sorted(index.items())), channel


def image_process_fn(live: LiveSegmentation, channels: Sequence[str] = ()) -> ImageProcessFn:
    """pycromanager's ``image_process_fn``: queue the frame in ``live``, pass it on unchanged."""

    def hook(image: Any, metadata: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        try:
            index, channel = metadata_index(metadata, channels)
        except Exception:  # unreadable axes: still never break the acquisition
            index, channel = (), None
        live.receive(image, index, channel, metadata)
        return image, metadata

    return hook
