"""Lazy segmentation of dask arrays: a dask array in, a dask array of class ids out.

Each frame (a Y x X plane at one index of the leading axes) is a task. A plane that
the input's chunks cut in Y or X is segmented region by region: each region with a
margin of the tiling overlap on every side (clipped at the frame's edges), its centre
kept, so that the regions join without seams; the whole frame's normalisation range
is used for all its regions.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
from distributed import default_client

from ..arrays import FrameLayout
from ..errors import NoContrastWarning
from ..preprocess import Normalization, StackRange
from ..segmenter import Segmenter
from ..spec import RunSpec
from ..tiling import region_margins
from .ranges import merged_range
from .sessions import ModelRef, send_model, session


def segment_dask(
    array: Any,
    axes: str,
    model: RunSpec | Path | str | None = None,
    *,
    channel: int | None = None,
    normalize: Literal["frame", "stack"] = "frame",
) -> da.Array:
    """Class ids (uint8) of every frame of the dask ``array`` (or any array, wrapped as
    one; axes named by ``axes``, e.g. ``"TZYX"``), as a lazy dask array with the input's
    axes less its channel axis.

    ``model``: a :class:`~ernet.runtime.RunSpec`, a model file or an embedded model's
    name (None: the embedded default). A channel axis feeds a multichannel model, or
    ``channel`` picks one. Frames are normalised on their own or, with
    ``normalize="stack"``, with the range of all of them (gathered by a reduction when
    the result is computed). On a ``distributed`` client the model is sent to each
    worker once and opened there once (until :func:`release_models`); elsewhere each
    process opens it on first use. Frames without contrast are all background, without
    a warning (the tasks run apart from the caller).
    """
    array = da.asarray(array)
    spec = model if isinstance(model, RunSpec) else RunSpec.of(model)
    with Segmenter(spec, warmup=False) as local:
        layout = FrameLayout.of(axes, tuple(array.shape), local.contract.in_channels, channel)
        height, width = layout.frame_shape
        plan = local.plan.fitted(height, width)
        normalization = local.normalization
    if normalize not in ("frame", "stack"):
        raise ValueError(f"normalize must be 'frame' or 'stack', got {normalize!r}")
    ref = ModelRef.of(RunSpec.of(spec, tile=plan.tile, overlap=plan.overlap))
    _send_model(ref)
    views = list(layout.frame_views(array))
    stack_range = None
    if normalize == "stack":
        stack_range = merged_range([dask.delayed(_partial_range)(normalization, view) for view in views])
    y_chunks, x_chunks = (array.chunks[layout.axes.index(a)] for a in "YX")
    frames = []
    for view in views:
        value_range = stack_range
        if value_range is None and (len(y_chunks) > 1 or len(x_chunks) > 1):
            value_range = dask.delayed(_frame_range)(normalization, view)  # for all its regions
        rows = []
        for y0, h in zip(_starts(y_chunks), y_chunks, strict=True):
            row = []
            for x0, w in zip(_starts(x_chunks), x_chunks, strict=True):
                (top, bottom), (left, right) = (
                    region_margins(start, size, total, plan.overlap)
                    for start, size, total in ((y0, h, height), (x0, w, width))
                )
                region = view[..., y0 - top : y0 + h + bottom, x0 - left : x0 + w + right]
                labels = dask.delayed(_segment_region)(ref, region, value_range, (top, left), (h, w))
                row.append(da.from_delayed(labels, (h, w), np.uint8))
            rows.append(row)
        frames.append(da.block(rows))
    stacked = da.stack(frames).reshape(*layout.lead_shape, height, width)
    out_axes = "".join(a for a in layout.axes if a != layout.channel_axis)
    order = [(layout.lead_axes + "YX").index(a) for a in out_axes]
    return stacked.transpose(order)


def _send_model(ref: ModelRef) -> None:
    """Send the model to the current distributed client's workers, if there is one."""
    try:
        client = default_client()
    except ValueError:  # no distributed client: the threaded or process scheduler
        return
    send_model(client, ref)


def _starts(chunks: Sequence[int]) -> list[int]:
    return [int(s) for s in np.cumsum((0, *chunks[:-1]))]


def _frame_range(normalization: Normalization, frame: np.ndarray) -> tuple[float, float]:
    return normalization.value_range(np.asarray(frame))


def _partial_range(normalization: Normalization, frame: np.ndarray) -> StackRange:
    return StackRange.of(normalization, [np.asarray(frame)])


def _segment_region(
    ref: ModelRef,
    region: np.ndarray,
    value_range: tuple[float, float] | None,
    offset: tuple[int, int],
    size: tuple[int, int],
) -> np.ndarray:
    """Class ids of a region's centre (``size`` at ``offset`` in the region)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoContrastWarning)
        labels = session(ref).segment(np.asarray(region), value_range)
    (top, left), (h, w) = offset, size
    return labels[top : top + h, left : left + w]
