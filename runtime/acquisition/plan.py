"""What an acquisition will deliver: each position's frames in order, and their axes.

Acquisition engines describe frames by an index of named axes (useq's ``t``, ``z``,
``c``, ``p``, ``g``). A plan, made from the sequence before the first frame, tells a
store how many frames each position holds and how they lie on a grid, so that labels
can be written as they arrive and the files are complete when the acquisition ends,
even where frames were dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np

from ..io import AxisScale, Calibration

#: A frame's place in the acquisition: (axis, value) pairs sorted by axis.
Index = tuple[tuple[str, int], ...]

#: The TIFF axis letter of each useq axis that a position's file can hold (``g``, the
#: grid of a tiled position, is tifffile's mosaic axis).
TIFF_AXES = {"t": "T", "z": "Z", "c": "C", "g": "M"}


def frame_index(index: Mapping[Any, Any]) -> Index:
    """An engine's index (useq's ``{Axis.TIME: 3, ...}`` or ``{"t": 3}``) as an :data:`Index`."""
    return tuple(sorted((str(getattr(axis, "value", axis)), int(value)) for axis, value in index.items()))


def event_channel(event: Any) -> str | None:
    """The channel configuration name of a ``useq.MDAEvent`` (None without a channel)."""
    channel = getattr(event, "channel", None)
    return None if channel is None else str(getattr(channel, "config", channel))


@dataclass(frozen=True)
class PositionPlan:
    """The frames of one position, in acquisition order, and the file they fill.

    ``axes``/``shape`` are the leading axes of that file (TIFF letters): the grid of
    the sequence's axes when the frames fill it in order, else one frame axis ``I``.
    """

    position: int
    name: str | None
    axes: str
    shape: tuple[int, ...]
    frames: tuple[Index, ...]

    def order(self) -> dict[Index, int]:
        """Each expected frame's number in the file."""
        return {index: k for k, index in enumerate(self.frames)}


@dataclass(frozen=True)
class AcquisitionPlan:
    """Every position's :class:`PositionPlan`; ``channel``: the one channel segmented;
    ``calibration``: the pixel size, z step and frame interval, where known."""

    positions: tuple[PositionPlan, ...]
    channel: str | None = None
    calibration: Calibration = field(default_factory=Calibration)

    @classmethod
    def of(
        cls, sequence: Any, channel: str | None = None, pixel_size_um: float | None = None
    ) -> AcquisitionPlan:
        """The plan of a ``useq.MDASequence``; with ``channel``, only that channel's frames;
        ``pixel_size_um``: the camera's pixel at the sample (the sequence does not say)."""
        events = list(sequence)
        if channel is not None:
            channels = {event_channel(e) for e in events}
            if channel not in channels:
                known = ", ".join(sorted(n for n in channels if n)) or "none"
                raise ValueError(f"the sequence has no channel {channel!r} (its channels: {known})")
            events = [e for e in events if event_channel(e) == channel]
        positions = getattr(sequence, "stage_positions", ()) or ()
        names = {p: getattr(position, "name", None) for p, position in enumerate(positions)}
        by_position: dict[int, list[Index]] = {}
        for event in events:
            index = frame_index(event.index)
            by_position.setdefault(dict(index).get("p", 0), []).append(index)
        order = [str(getattr(a, "value", a)) for a in getattr(sequence, "axis_order", "tpgcz")]
        sizes = {str(getattr(a, "value", a)): int(n) for a, n in dict(sequence.sizes).items()}
        # One channel segmented: its file has no channel axis.
        grid_axes = [
            a for a in order if a in TIFF_AXES and sizes.get(a, 0) > 0 and (a != "c" or channel is None)
        ]
        plans = tuple(
            _position_plan(p, names.get(p), frames, grid_axes, sizes)
            for p, frames in sorted(by_position.items())
        )
        return cls(plans, channel, sequence_calibration(sequence, pixel_size_um))

    @classmethod
    def single(cls, frames: int) -> AcquisitionPlan:
        """A plan of one position and ``frames`` frames indexed by ``t`` (a plain loop)."""
        return cls((PositionPlan(0, None, "T", (frames,), tuple((("t", t),) for t in range(frames))),))

    def position(self, index: Index) -> PositionPlan:
        """The position a frame belongs to; KeyError if the plan has none for it."""
        p = dict(index).get("p", 0)
        for plan in self.positions:
            if plan.position == p:
                return plan
        raise KeyError(f"no position {p} in this acquisition")


def sequence_calibration(sequence: Any, pixel_size_um: float | None = None) -> Calibration:
    """The steps a useq sequence fixes: its z step (µm) and time interval (s), with the
    pixel size where given (a positive number)."""
    axes = {}
    if pixel_size_um:
        axes["X"] = axes["Y"] = AxisScale(float(pixel_size_um), "micron")
    step = getattr(getattr(sequence, "z_plan", None), "step", None)
    if step:
        axes["Z"] = AxisScale(float(step), "micron")
    interval: Any = getattr(getattr(sequence, "time_plan", None), "interval", None)
    seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
    if seconds:
        axes["T"] = AxisScale(float(seconds), "s")
    return Calibration(axes)


def _position_plan(
    position: int, name: str | None, frames: list[Index], axes: Iterable[str], sizes: Mapping[str, int]
) -> PositionPlan:
    axes = list(axes)
    shape = tuple(sizes[a] for a in axes)
    numbers = [
        int(np.ravel_multi_index([dict(i).get(a, 0) for a in axes], shape)) if shape else 0 for i in frames
    ]
    if numbers == list(range(int(np.prod(shape, dtype=np.int64)))):
        return PositionPlan(position, name, "".join(TIFF_AXES[a] for a in axes), shape, tuple(frames))
    return PositionPlan(position, name, "I", (len(frames),), tuple(frames))
