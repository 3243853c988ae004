"""Files through the model on a Dask cluster: one input's frames as tasks, written by
the workers straight into OME-Zarr stores.

:func:`segment_on_cluster` is :func:`ernet.runtime.pipeline.segment_image` run by a
cluster: the client plans (the tiling fitted to the frames, a stack's range gathered
by the workers, the output stores), each worker reads its frames from the input,
segments them with its own session and writes them into the stores with a completion
record per frame; only the numbers of frames without contrast come back. A worker that dies has its frames
recomputed elsewhere (writes are idempotent); an interrupted run leaves the partial
stores for ``resume``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np
from dask.typing import Key
from distributed import Client, Future, as_completed

from ..errors import ClusterError, ErnetError, NoContrastWarning, first_line
from ..io import Source, open_image
from ..io.omezarr.store import MAX_CHUNK_SIDE, FrameStore
from ..pipeline import Outputs, Timings, probabilities_layout, run_description
from ..postprocess import Prediction, ProbabilityFormat
from ..preprocess import Normalization, StackRange
from ..segmenter import Segmenter, without_contrast
from ..tiling import region_margins
from .ranges import merged_range
from .sessions import ModelRef, exclusive, send_model, session

log = logging.getLogger(__name__)
#: Frames per task: consecutive frames streamed through a worker's session as one process
#: streams them (larger groups: less overhead per frame, coarser progress and retries).
FRAMES_PER_TASK = 4
#: The share of a worker's memory limit that segmenting one plane (or region) may take.
WORKER_MEMORY_SHARE = 0.5
#: Regions of split planes have sides of a multiple of this (of the pyramid's steps too).
REGION_STEP = 256
#: Frames per task of the pass that gathers a stack's normalisation range.
RANGE_FRAMES_PER_TASK = 16


@dataclass(frozen=True)
class SourceRef:
    """How a worker opens the input: its path and the selection (channel, fixed axes, series)."""

    path: Path
    channel: int | None = None
    index: tuple[tuple[str, int], ...] = ()
    series: int | None = None

    def __post_init__(self) -> None:  # workers may run in another folder
        object.__setattr__(self, "path", Path(os.path.abspath(self.path)))

    def open(self) -> Source:
        """The input, opened once per worker thread (file handles are not shared between
        threads: reads would interleave)."""
        key = (self, threading.get_ident())
        with _LOCK:
            source = _SOURCES.get(key)
            if source is None:
                source = _SOURCES[key] = open_image(self.path, self.channel, dict(self.index), self.series)
            return source


_SOURCES: dict[tuple[SourceRef, int], Source] = {}
_LOCK = threading.Lock()


def forget_sources() -> None:
    """Drop the inputs this process opened (at the end of a run: a long-lived worker
    must not read a changed input through what it opened before)."""
    with _LOCK:
        _SOURCES.clear()


@dataclass(frozen=True)
class _Stores:
    """The stores a frame is written into, and the probabilities' format."""

    mask: FrameStore
    probabilities: FrameStore | None
    probability_format: ProbabilityFormat | None

    def all(self) -> list[FrameStore]:
        return [s for s in (self.mask, self.probabilities) if s is not None]

    def done(self, frame: int, origin: tuple[int, int] = (0, 0)) -> bool:
        return all(store.done(frame, origin) for store in self.all())

    def write(
        self,
        frame: int,
        prediction: Prediction,
        origin: tuple[int, int] = (0, 0),
        centre: tuple[slice, slice] = (slice(None), slice(None)),
    ) -> None:
        """Write the ``centre`` of a frame's (or a region's) prediction at ``origin``: the
        probabilities first, the mask last (its record marks the frame done)."""
        if self.probabilities is not None and prediction.probabilities is not None:
            self.probabilities.write(frame, prediction.probabilities[(slice(None), *centre)], origin)
        self.mask.write(frame, prediction.labels[centre], origin)


def _segment_frames(
    frames: list[int],
    model: ModelRef,
    source: SourceRef,
    value_range: tuple[float, float] | None,
    stores: _Stores,
) -> list[int]:
    """Segment some frames on a worker, as one process does (the next frames read and
    normalised on a thread while the model runs; one group at a time per session, so
    that the model has the worker's threads), writing each into the stores as it is
    done; returns those without contrast."""
    segmenter = session(model)
    opened = source.open()
    flat = []
    with exclusive(model):
        predictions = segmenter.stream(
            (opened.frame(i) for i in frames), value_range, stores.probability_format
        )
        for frame, (_, prediction) in zip(frames, predictions, strict=True):
            stores.write(frame, prediction)
            if not prediction.contrast:
                flat.append(frame)
    return flat


def _segment_region(
    frame: int,
    origin: tuple[int, int],
    side: int,
    model: ModelRef,
    source: SourceRef,
    value_range: tuple[float, float],
    stores: _Stores,
) -> list[int]:
    """Segment the ``side`` x ``side`` region at ``origin`` of a frame on a worker, with a
    margin of the tiling overlap, normalised with the whole frame's ``value_range``, and
    write its centre into the stores; returns the frame if it has no contrast."""
    segmenter, opened = session(model), source.open()
    (height, width), (y0, x0) = opened.frame_shape, origin
    h, w = min(side, height - y0), min(side, width - x0)
    overlap = model.spec.overlap or 0
    (top, bottom), (left, right) = (
        region_margins(y0, h, height, overlap),
        region_margins(x0, w, width, overlap),
    )
    image = opened.region(frame, slice(y0 - top, y0 + h + bottom), slice(x0 - left, x0 + w + right))
    with exclusive(model), warnings.catch_warnings():
        warnings.simplefilter("ignore", NoContrastWarning)  # reported once, by the client
        prediction = segmenter.predict(image, value_range, stores.probability_format)
    stores.write(frame, prediction, origin, (slice(top, top + h), slice(left, left + w)))
    return [] if prediction.contrast else [frame]


def _frame_range(frame: int, normalization: Normalization, source: SourceRef) -> tuple[float, float]:
    """A whole frame's normalisation range, for all its regions."""
    return normalization.value_range(source.open().frame(frame))


def _partial_range(frames: range, normalization: Normalization, source: SourceRef) -> StackRange:
    """The stack range of some of the input's frames, read on a worker."""
    opened = source.open()
    return StackRange.of(normalization, (opened.frame(frame) for frame in frames))


def stack_range_on_cluster(
    client: Client, normalization: Normalization, source: SourceRef, n_frames: int
) -> tuple[float, float]:
    """The normalisation range of all the input's frames, gathered by the workers in
    groups and merged in a tree: what one pass over the stack gives, bit for bit."""
    groups = [
        range(i, min(i + RANGE_FRAMES_PER_TASK, n_frames)) for i in range(0, n_frames, RANGE_FRAMES_PER_TASK)
    ]
    partials = [dask.delayed(_partial_range)(group, normalization, source) for group in groups]
    try:
        return tuple(client.compute(merged_range(partials)).result())  # type: ignore[return-value]
    except Exception as exc:  # a worker's error, or Dask's (a killed worker, a cancelled task)
        raise ClusterError(_failure(source.path, exc)) from None


def segment_on_cluster(
    client: Client,
    segmenter: Segmenter,
    source: Source,
    source_ref: SourceRef,
    outputs: Outputs,
    *,
    normalize_over: Literal["frame", "stack"] = "frame",
    resume: bool = False,
    advance: Callable[[int], None] = lambda n: None,
    region: int | None = None,
) -> Timings:
    """Segment every frame of ``source`` on the cluster of ``client`` into OME-Zarr
    ``outputs`` (mask, and probabilities where asked), as
    :func:`~ernet.runtime.pipeline.segment_image` does in one process and with the same
    labels. ``segmenter`` is the client's session of the model: its tiling, fitted to
    the frames, is what the workers use. With ``resume``, frames that partial stores
    of an interrupted run of the same model, options and input hold are not segmented
    again. A plane too large for a worker's memory (:func:`region_side`), or every plane
    with ``region`` (a multiple of ``2 ** (pyramid levels - 1)``, e.g. 256), is segmented
    in square regions with a margin of the tiling overlap, all normalised with the whole
    frame's range. Returns the time taken (all of it counted as segmentation)."""
    start = time.perf_counter()
    plan = segmenter.plan.fitted(*source.frame_shape)
    model = ModelRef.of(replace(segmenter.spec, tile=plan.tile, overlap=plan.overlap))
    try:
        send_model(client, model)
    except Exception as exc:
        raise ClusterError(f"the cluster's workers cannot open the model ({first_line(exc)})") from None
    try:
        stores, flat = _segment(
            client, segmenter, source, source_ref, outputs, model, normalize_over, resume, advance, region
        )
    finally:  # a long-lived worker must not read a changed input through what it opened
        with contextlib.suppress(Exception):
            client.run(forget_sources)
    for store in stores.all():
        store.finish()
    if flat:
        log.warning("note: %s: %s", source.path, without_contrast(sorted(flat), source.n_frames))
    return Timings(segmentation=time.perf_counter() - start)


def _segment(
    client: Client,
    segmenter: Segmenter,
    source: Source,
    source_ref: SourceRef,
    outputs: Outputs,
    model: ModelRef,
    normalize_over: Literal["frame", "stack"],
    resume: bool,
    advance: Callable[[int], None],
    region: int | None,
) -> tuple[_Stores, set[int]]:
    """:func:`segment_on_cluster`'s run: the stores written (not yet in place) and the
    frames without contrast."""
    value_range = None
    if normalize_over == "stack":
        value_range = stack_range_on_cluster(client, segmenter.normalization, source_ref, source.n_frames)
    side = region or region_side(segmenter, source, outputs, worker_budget(client))
    recorded = {"model_key": model.key, "input": str(source_ref.path), "region": side}
    stores = _create_stores(segmenter, source, outputs, normalize_over, value_range, resume, side, recorded)
    origins = _origins(*source.frame_shape, side)
    if side is None:  # whole frames, in groups
        todo = [frame for frame in range(source.n_frames) if not stores.done(frame)]
        groups = [todo[i : i + FRAMES_PER_TASK] for i in range(0, len(todo), FRAMES_PER_TASK)]
        futures = client.map(
            _segment_frames, groups, model=model, source=source_ref, value_range=value_range, stores=stores,
            pure=False,
        )  # fmt: skip
        finishes = {future.key: group for future, group in zip(futures, groups, strict=True)}
    else:  # regions of planes too large for one worker
        per_frame = segmenter.normalization if normalize_over == "frame" else None
        futures, finishes = _submit_regions(
            client, side, origins, model, source, source_ref, value_range, per_frame, stores
        )
    left = Counter(frame for frames in finishes.values() for frame in frames)
    advance(source.n_frames - len(left))
    flat: set[int] = set()
    try:
        for future in as_completed(futures):
            if future.status != "finished":
                error = future.exception() if future.status == "error" else None
                raise ClusterError(_failure(source.path, error, future.status))
            flat.update(future.result())
            for frame in finishes[future.key]:
                left[frame] -= 1
                if not left[frame]:
                    advance(1)
    except BaseException as exc:
        _cancel(client, futures)
        done = sum(all(stores.done(frame, o) for o in origins) for frame in range(source.n_frames))
        note = (
            f"{done} of {source.n_frames} frames are kept in {stores.mask.work}: rerun with --resume to go on"
        )
        if isinstance(exc, ClusterError):
            raise ClusterError(f"{exc}; {note}") from None
        log.warning("note: %s: %s", source.path, note)
        raise
    return stores, flat


def worker_budget(client: Client) -> int | None:
    """The memory one plane's segmentation may take on the cluster's smallest worker
    (:data:`WORKER_MEMORY_SHARE` of its limit); None where no worker has a limit."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    return int(min(limits) * WORKER_MEMORY_SHARE) if limits and min(limits) > 0 else None


def region_side(segmenter: Segmenter, source: Source, outputs: Outputs, budget: int | None) -> int | None:
    """None where whole frames fit in ``budget`` bytes; else the largest side (a multiple of
    :data:`REGION_STEP`) of square regions that do, margins included."""
    height, width = source.frame_shape
    fmt = outputs.probability_format if outputs.probabilities else None
    if budget is None or segmenter.frame_bytes(height, width, fmt) <= budget:
        return None
    side, margin = REGION_STEP, 2 * segmenter.plan.fitted(height, width).overlap
    while (
        side * 2 < max(height, width)
        and segmenter.frame_bytes(2 * side + margin, 2 * side + margin, fmt) <= budget
    ):
        side *= 2
    return side


def _origins(height: int, width: int, side: int | None) -> list[tuple[int, int]]:
    """Where a frame's regions of ``side`` start; a whole frame (None) starts at 0, 0."""
    return [(y, x) for y in range(0, height, side) for x in range(0, width, side)] if side else [(0, 0)]


def _submit_regions(
    client: Client,
    side: int,
    origins: list[tuple[int, int]],
    model: ModelRef,
    source: Source,
    source_ref: SourceRef,
    value_range: tuple[float, float] | None,
    per_frame: Normalization | None,
    stores: _Stores,
) -> tuple[list[Future], dict[Key, list[int]]]:
    """Submit the regions not yet written: the futures, and the frame each finishes. Each
    frame's regions share ``value_range`` or, normalised ``per_frame``, the frame's own."""
    futures: list[Future] = []
    finishes: dict[Key, list[int]] = {}
    for frame in range(source.n_frames):
        missing = [origin for origin in origins if not stores.done(frame, origin)]
        if not missing:
            continue
        frame_range: Any = value_range
        if per_frame is not None:  # a task of its own, that the frame's regions wait for
            frame_range = client.submit(_frame_range, frame, per_frame, source_ref, pure=False)
        for origin in missing:
            future = client.submit(
                _segment_region, frame, origin, side, model, source_ref, frame_range, stores, pure=False
            )
            futures.append(future)
            finishes[future.key] = [frame]
    return futures, finishes


def _failure(path: Path, error: BaseException | None, status: str = "error") -> str:
    """What a failed task says: our errors name their file, others get the input's name."""
    if isinstance(error, ErnetError):
        return first_line(error)
    if error is None:
        return f"{path}: a task was {status} on the cluster"
    return f"{path}: {type(error).__name__}: {first_line(error)}"


#: Seconds to wait for cancelled tasks that are already running to finish.
CANCEL_WAIT = 60.0


def _cancel(client: Client, futures: list[Future]) -> None:
    """Cancel ``futures`` and wait (a while) until none of them still runs: a running task
    is not stopped by Dask, and would otherwise go on writing into the stores."""
    client.cancel(futures)
    keys = {future.key for future in futures}
    deadline = time.monotonic() + CANCEL_WAIT
    while time.monotonic() < deadline:
        running = {key for tasks in client.processing().values() for key in tasks}
        if not running & keys:
            return
        time.sleep(0.1)


def _create_stores(
    segmenter: Segmenter,
    source: Source,
    outputs: Outputs,
    normalize_over: Literal["frame", "stack"],
    value_range: tuple[float, float] | None,
    resume: bool,
    side: int | None,
    recorded: dict[str, Any],
) -> _Stores:
    """The output stores, created (or reopened, to resume) by the client; chunks of
    ``side`` where planes are written in regions; ``recorded`` in their description too
    (what a resumed run must match)."""
    description = {**run_description(segmenter, source, normalize_over, value_range), **recorded}
    options: dict[str, Any] = {
        "description": description,
        "overwrite": outputs.overwrite,
        "resume": resume,
        "chunk": side or MAX_CHUNK_SIDE,
    }
    class_names = segmenter.contract.class_names
    mask = FrameStore.create(
        outputs.mask, source.shape, source.axes, "uint8", source.calibration,
        class_names=class_names, **options,
    )  # fmt: skip
    probabilities = None
    if outputs.probabilities is not None:
        shape, axes = probabilities_layout(segmenter, source)
        probabilities = FrameStore.create(
            outputs.probabilities,
            shape,
            axes,
            np.dtype(outputs.probability_format),
            source.calibration,
            labels=False,
            **options,
        )
    return _Stores(mask, probabilities, outputs.probability_format if probabilities else None)
