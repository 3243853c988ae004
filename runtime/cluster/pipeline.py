"""Files through the model on a Dask cluster: one input's frames as tasks, written by
the workers straight into OME-Zarr stores.

:func:`segment_on_cluster` is :func:`ernet.runtime.pipeline.segment_image` run by a
cluster: the client plans (the tiling fitted to the frames, a stack's range gathered
by the workers, the output stores), each worker reads its frames from the input,
segments them with its own session and writes them into the stores with a completion
record per frame; only a flag per frame comes back. A worker that dies has its frames
recomputed elsewhere (writes are idempotent); an interrupted run leaves the partial
stores for ``resume``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np
from distributed import Client, as_completed

from ..errors import ClusterError, ErnetError, first_line
from ..io import Source, open_image
from ..io.omezarr.store import FrameStore
from ..pipeline import Outputs, Timings, check_frame_memory, run_description
from ..postprocess import ProbabilityFormat
from ..preprocess import Normalization, StackRange
from ..segmenter import Segmenter, without_contrast
from .ranges import gathered, merged_range
from .sessions import ModelRef, exclusive, send_model, session

log = logging.getLogger(__name__)
#: Frames per task: consecutive frames streamed through a worker's session as one process
#: streams them (larger groups: less overhead per frame, coarser progress and retries).
FRAMES_PER_TASK = 4
#: Frames per task of the pass that gathers a stack's normalisation range.
RANGE_FRAMES_PER_TASK = 16


@dataclass(frozen=True)
class SourceRef:
    """How a worker opens the input: its path and the selection (channel, fixed axes, series)."""

    path: Path
    channel: int | None = None
    index: tuple[tuple[str, int], ...] = ()
    series: int | None = None

    def open(self) -> Source:
        """The input, opened once per worker process."""
        with _LOCK:
            source = _SOURCES.get(self)
            if source is None:
                source = _SOURCES[self] = open_image(self.path, self.channel, dict(self.index), self.series)
            return source


_SOURCES: dict[SourceRef, Source] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Stores:
    """The stores a frame is written into, and the probabilities' format."""

    mask: FrameStore
    probabilities: FrameStore | None
    probability_format: ProbabilityFormat | None

    def all(self) -> list[FrameStore]:
        return [s for s in (self.mask, self.probabilities) if s is not None]

    def done(self, frame: int) -> bool:
        return all(store.done(frame) for store in self.all())


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
            if stores.probabilities is not None and prediction.probabilities is not None:
                stores.probabilities.write(frame, prediction.probabilities)
            stores.mask.write(frame, prediction.labels)  # last: the mask's record marks the frame done
            if not prediction.contrast:
                flat.append(frame)
    return flat


def _partial_range(frames: range, normalization: Normalization, source: SourceRef) -> StackRange:
    """The stack range of some of the input's frames, read on a worker."""
    opened = source.open()
    return gathered(normalization, (opened.frame(frame) for frame in frames))


def stack_range_on_cluster(
    client: Client, normalization: Normalization, source: SourceRef, n_frames: int
) -> tuple[float, float]:
    """The normalisation range of all the input's frames, gathered by the workers in
    groups and merged in a tree: what one pass over the stack gives, bit for bit."""
    groups = [
        range(i, min(i + RANGE_FRAMES_PER_TASK, n_frames)) for i in range(0, n_frames, RANGE_FRAMES_PER_TASK)
    ]
    partials = [dask.delayed(_partial_range)(group, normalization, source) for group in groups]
    return tuple(client.compute(merged_range(partials)).result())  # type: ignore[return-value]


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
    check_memory: bool = True,
) -> Timings:
    """Segment every frame of ``source`` on the cluster of ``client`` into OME-Zarr
    ``outputs`` (mask, and probabilities where asked), as
    :func:`~ernet.runtime.pipeline.segment_image` does in one process and with the same
    labels. ``segmenter`` is the client's session of the model: its tiling, fitted to
    the frames, is what the workers use. With ``resume``, frames that partial stores
    of an interrupted run of the same model, options and input hold are not segmented
    again. Returns the time taken (all of it counted as segmentation)."""
    if check_memory:
        check_frame_memory(segmenter, source, outputs)
    start = time.perf_counter()
    plan = segmenter.plan.fitted(*source.frame_shape)
    model = ModelRef.of(replace(segmenter.spec, tile=plan.tile, overlap=plan.overlap))
    try:
        send_model(client, model)
    except Exception as exc:
        raise ClusterError(f"the cluster's workers cannot open the model ({first_line(exc)})") from None
    value_range = None
    if normalize_over == "stack":
        value_range = stack_range_on_cluster(client, segmenter.normalization, source_ref, source.n_frames)
    stores = _create_stores(segmenter, source, outputs, normalize_over, value_range, resume)
    todo = [frame for frame in range(source.n_frames) if not stores.done(frame)]
    advance(source.n_frames - len(todo))
    groups = [todo[i : i + FRAMES_PER_TASK] for i in range(0, len(todo), FRAMES_PER_TASK)]
    futures = client.map(
        _segment_frames,
        groups,
        model=model,
        source=source_ref,
        value_range=value_range,
        stores=stores,
        pure=False,
    )
    size = {future.key: len(group) for future, group in zip(futures, groups, strict=True)}
    flat: list[int] = []
    try:
        for future in as_completed(futures):
            if future.status == "error":
                raise ClusterError(_failure(source.path, future.exception()))
            flat += future.result()
            advance(size[future.key])
    except BaseException as exc:
        client.cancel(futures)
        done = sum(stores.done(frame) for frame in range(source.n_frames))
        note = (
            f"{done} of {source.n_frames} frames are kept in {stores.mask.work}: rerun with --resume to go on"
        )
        if isinstance(exc, ClusterError):
            raise ClusterError(f"{exc}; {note}") from None
        log.warning("note: %s: %s", source.path, note)
        raise
    for store in stores.all():
        store.finish()
    if flat:
        log.warning("note: %s: %s", source.path, without_contrast(sorted(flat), source.n_frames))
    return Timings(segmentation=time.perf_counter() - start)


def _failure(path: Path, error: BaseException | None) -> str:
    """What a failed task says: our errors name their file, others get the input's name."""
    if isinstance(error, ErnetError):
        return first_line(error)
    return f"{path}: {type(error).__name__}: {first_line(error) if error else 'failed'}"


def _create_stores(
    segmenter: Segmenter,
    source: Source,
    outputs: Outputs,
    normalize_over: Literal["frame", "stack"],
    value_range: tuple[float, float] | None,
    resume: bool,
) -> _Stores:
    """The output stores, created (or reopened, to resume) by the client."""
    description = run_description(segmenter, source, normalize_over, value_range)
    options: dict[str, Any] = {"description": description, "overwrite": outputs.overwrite, "resume": resume}
    class_names = segmenter.contract.class_names
    mask = FrameStore.create(
        outputs.mask, source.shape, source.axes, "uint8", source.calibration,
        class_names=class_names, **options,
    )  # fmt: skip
    probabilities = None
    if outputs.probabilities is not None:
        lead_axes, lead_shape = source.axes[:-2], source.shape[:-2]
        probabilities = FrameStore.create(
            outputs.probabilities,
            (*lead_shape, segmenter.n_classes, *source.frame_shape),
            lead_axes + "CYX",
            np.dtype(outputs.probability_format),
            source.calibration,
            labels=False,
            **options,
        )
    return _Stores(mask, probabilities, outputs.probability_format if probabilities else None)
