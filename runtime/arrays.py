"""Segmenting an in-memory n-D array with named axes: what notebooks, viewers and
cluster workers hand over. Frames are drawn one at a time (``array[index]``), so a
lazy array (dask, zarr) is read frame by frame."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .errors import InputError, NoContrastWarning
from .postprocess import ProbabilityFormat
from .preprocess import stack_range
from .segmenter import Segmenter, without_contrast

#: Axis names that hold channels (colour samples count as channels).
CHANNEL_AXES = "CS"


class Cancelled(Exception):
    """Segmentation stopped because the caller's ``cancelled()`` said so."""


@dataclass(frozen=True)
class ArraySegmentation:
    """Class ids with ``axes`` (the input's, less its channel axis), and with
    ``probabilities`` asked for, K class probabilities with ``probability_axes``
    (the leading axes, ``C``, then ``YX``)."""

    labels: np.ndarray
    axes: str
    probabilities: np.ndarray | None = None
    probability_axes: str | None = None


def segment_array(
    segmenter: Segmenter,
    array: Any,
    axes: str,
    *,
    channel: int | None = None,
    probabilities: ProbabilityFormat | None = None,
    normalize: Literal["frame", "stack"] = "frame",
    on_progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ArraySegmentation:
    """Segment every Y x X frame of ``array``, whose axes are named by ``axes``
    (e.g. ``"TZYX"``, ``"YXC"``: one letter per axis, ``Y`` and ``X`` among them).

    A channel axis (``C`` or ``S``) feeds a multichannel model's channels; for a
    one-channel model pick one with ``channel``. Frames are normalised on their own,
    or with ``normalize="stack"`` all alike (a first pass over the array).
    ``on_progress(done, total)`` is called after each frame; ``cancelled()`` is asked
    before each and, when true, stops with :class:`Cancelled`.
    """
    stop = cancelled or (lambda: False)
    steps = segment_array_steps(
        segmenter, array, axes, channel=channel, probabilities=probabilities, normalize=normalize
    )
    if stop():
        raise Cancelled("segmentation cancelled before the first frame")
    with closing(steps):  # stops the read-ahead when cancelled
        while True:
            try:
                done, total = next(steps)
            except StopIteration as finished:
                return finished.value  # type: ignore[no-any-return]
            if on_progress is not None:
                on_progress(done, total)
            if done < total and stop():
                raise Cancelled(f"segmentation cancelled after {done} of {total} frames")


def segment_array_steps(
    segmenter: Segmenter,
    array: Any,
    axes: str,
    *,
    channel: int | None = None,
    probabilities: ProbabilityFormat | None = None,
    normalize: Literal["frame", "stack"] = "frame",
) -> Generator[tuple[int, int], None, ArraySegmentation]:
    """:func:`segment_array` one frame at a time, for an event loop or a GUI worker:
    yields ``(done, total)`` after each frame and returns the result; closing it
    early stops the work (and the read-ahead)."""
    shape = tuple(np.shape(array))
    layout = FrameLayout.of(axes, shape, segmenter.contract.in_channels, channel)
    total = int(np.prod(layout.lead_shape, dtype=np.int64))
    value_range = None
    if normalize == "stack":
        value_range = stack_range(segmenter.normalization, layout.frames(array))
    elif normalize != "frame":
        raise ValueError(f"normalize must be 'frame' or 'stack', got {normalize!r}")
    height, width = layout.frame_shape
    labels = np.empty((total, height, width), np.uint8)
    probs = None
    if probabilities is not None:
        probs = np.empty((total, segmenter.n_classes, height, width), probabilities)
    flat = []
    with closing(segmenter.stream(layout.frames(array), value_range, probabilities)) as predictions:
        for done, (_, prediction) in enumerate(predictions, start=1):
            if not prediction.contrast:
                flat.append(done - 1)
            labels[done - 1] = prediction.labels
            if probs is not None:
                probs[done - 1] = prediction.probabilities
            yield done, total
    if flat:
        warnings.warn(without_contrast(flat, total), NoContrastWarning, stacklevel=3)
    return layout.result(labels, probs)


@dataclass(frozen=True)
class FrameLayout:
    """Where an array's frames are: the leading axes enumerate them; ``channel_axis``
    (if any) is moved before Y, X, or fixed at ``channel``."""

    axes: str
    lead_axes: str
    lead_shape: tuple[int, ...]
    channel_axis: str | None
    channel: int | None
    frame_shape: tuple[int, int]

    @classmethod
    def of(cls, axes: str, shape: tuple[int, ...], in_channels: int, channel: int | None) -> FrameLayout:
        axes = axes.upper()
        if len(axes) != len(shape) or len(set(axes)) != len(axes) or not axes.isalpha():
            raise InputError(f"axes '{axes}' do not name the {len(shape)} axes of an array of shape {shape}")
        if "Y" not in axes or "X" not in axes:
            raise InputError(f"axes '{axes}' have no Y and X")
        if 0 in shape:
            raise InputError(f"array of shape {shape} is empty")
        sizes = dict(zip(axes, shape, strict=True))
        found = [a for a in axes if a in CHANNEL_AXES]
        if len(found) > 1:
            raise InputError(f"axes '{axes}' have two channel axes ({', '.join(found)})")
        channel_axis = found[0] if found else None
        n = sizes[channel_axis] if channel_axis else 1
        if in_channels == 1:
            if channel is not None and not 0 <= channel < n:
                raise InputError(f"channel {channel} is outside the {n} channels of axis '{channel_axis}'")
            if channel is None and n > 1:
                raise InputError(
                    f"array has {n} channels (axis '{channel_axis}'); the model takes one: "
                    "choose it with channel="
                )
            channel = channel or 0
        elif n != in_channels or channel is not None:
            raise InputError(f"the model takes {in_channels} channels; axis '{channel_axis or 'C'}' has {n}")
        lead = "".join(a for a in axes if a not in "YX" and a != channel_axis)
        lead_shape = tuple(sizes[a] for a in lead)
        return cls(axes, lead, lead_shape, channel_axis, channel, (sizes["Y"], sizes["X"]))

    def frame_views(self, array: Any) -> Iterator[Any]:
        """Each frame as ``array`` indexed and transposed to Y x X (or C x Y x X): for a
        dask array a lazy one, for a zarr array one read."""
        frame_axes = ("" if self.channel is not None or not self.channel_axis else self.channel_axis) + "YX"
        for index in np.ndindex(*self.lead_shape):
            position = dict(zip(self.lead_axes, index, strict=True))
            if self.channel_axis and self.channel is not None:
                position[self.channel_axis] = self.channel
            key = tuple(position.get(a, slice(None)) for a in self.axes)
            kept = [a for a in self.axes if a not in position]
            view, order = array[key], [kept.index(a) for a in frame_axes]
            yield (
                view.transpose(order) if hasattr(view, "transpose") else np.transpose(np.asarray(view), order)
            )

    def frames(self, array: Any) -> Iterator[np.ndarray]:
        """Each frame as a numpy Y x X (or C x Y x X) array, read on demand."""
        for view in self.frame_views(array):
            yield np.asarray(view)

    def result(self, labels: np.ndarray, probabilities: np.ndarray | None) -> ArraySegmentation:
        """Stacked frame results back in the array's axis order (probabilities: lead, C, YX)."""
        lead_shape = self.lead_shape
        stacked = self.lead_axes + "YX"
        out_axes = "".join(a for a in self.axes if a != self.channel_axis)
        labels = labels.reshape(*lead_shape, *labels.shape[1:])
        order = [stacked.index(a) for a in out_axes]
        labels = np.ascontiguousarray(np.transpose(labels, order))
        if probabilities is None:
            return ArraySegmentation(labels, out_axes)
        probabilities = probabilities.reshape(*lead_shape, *probabilities.shape[1:])
        return ArraySegmentation(labels, out_axes, probabilities, self.lead_axes + "CYX")
