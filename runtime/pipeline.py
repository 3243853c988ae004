"""Stacks through the model in bounded memory, with reading and writing overlapped.

``prefetch`` is the bounded read-ahead queue; ``segment_image`` runs one input
file to its output files (masks, probabilities, overlays) frame by frame.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np

from .analysis import AnalysisOptions, MetricsRecorder
from .io import Image, TiffStackWriter
from .preprocess import StackRange

if TYPE_CHECKING:
    from .segmenter import ProbabilityFormat, Segmenter

T = TypeVar("T")
_END = object()


def prefetch(items: Iterable[T], size: int = 2) -> Iterator[T]:
    """Iterate ``items`` on a background thread, at most ``size`` items ahead of the caller.

    Whatever producing an item costs (reading, decoding, normalising) overlaps with
    the caller's work on the previous ones. An exception in the producer is raised
    here, at the item where it happened; closing the iterator early stops the producer.
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    ready: queue.Queue[object] = queue.Queue(maxsize=size)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            offer(_Failure(exc))
            return
        offer(_END)

    thread = threading.Thread(target=produce, name="ernet-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


@dataclass(frozen=True)
class Outputs:
    """The files one input's segmentation writes."""

    mask: Path
    probabilities: Path | None = None
    probability_format: ProbabilityFormat = "uint8"
    overlay: Path | None = None
    metrics: Path | None = None
    overwrite: bool = False

    def paths(self) -> list[Path]:
        return [p for p in (self.mask, self.probabilities, self.overlay, self.metrics) if p is not None]


#: Overlay colours (RGB) of classes 1, 2, ...; background stays grey.
CLASS_COLOURS = np.array([[255, 0, 255], [0, 255, 0], [255, 160, 0], [0, 160, 255]], np.float32)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An RGB uint8 view of a normalised frame (0-1) with each class >= 1 tinted."""
    grey = np.clip(image, 0.0, 1.0) * np.float32(255)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for k in range(1, int(labels.max(initial=0)) + 1):
        where = labels == k
        rgb[where] = (1 - alpha) * rgb[where] + alpha * CLASS_COLOURS[(k - 1) % len(CLASS_COLOURS)]
    return np.rint(rgb).astype(np.uint8)


def segment_image(
    segmenter: Segmenter,
    image: Image,
    outputs: Outputs,
    *,
    normalize_over: Literal["frame", "stack"] = "frame",
    analysis: AnalysisOptions | None = None,
    figures: bool = False,
    advance: Callable[[int], None] = lambda n: None,
) -> None:
    """Segment every frame of ``image`` into ``outputs``, in bounded memory.

    Frames are read and normalised on one thread, run through the model on the
    caller's, and written page by page on writer threads, so reading and writing
    overlap with model execution. Outputs keep the input's axes and calibration and
    record how they were made; each appears only when complete. With
    ``outputs.metrics``, network metrics of every frame go to a CSV (``analysis``
    options; the pixel size from the input unless they set one), with ``figures``
    also a graph PNG per frame and a time series.
    """
    value_range = None
    if normalize_over == "stack":
        gathered = StackRange(segmenter.normalization)
        for frame in image.frames():
            gathered.add(frame)
        value_range = gathered.value_range()
    description = {
        "source": image.path.name,
        **segmenter.describe(),
        "normalized_over": normalize_over,
        "value_range": value_range,
    }
    lead_axes, lead_shape = image.axes[:-2], image.shape[:-2]
    height, width = image.frame_shape
    with ExitStack() as files:

        def writer(path: Path, shape: tuple[int, ...], axes: str, dtype: str) -> TiffStackWriter:
            return files.enter_context(
                TiffStackWriter(
                    path,
                    shape,
                    axes,
                    np.dtype(dtype),
                    image.calibration,
                    description=description,
                    overwrite=outputs.overwrite,
                )
            )

        masks = writer(outputs.mask, image.shape, image.axes, "uint8")
        probabilities = overlays = None
        if outputs.probabilities:
            k = segmenter.n_classes
            probabilities = writer(
                outputs.probabilities,
                (*lead_shape, k, height, width),
                lead_axes + "CYX",
                outputs.probability_format,
            )
        if outputs.overlay:
            overlays = writer(outputs.overlay, (*lead_shape, height, width, 3), lead_axes + "YXS", "uint8")
        prepared = prefetch(segmenter.prepare(frame, value_range) for frame in image.frames())
        fmt = outputs.probability_format if probabilities else None
        options = analysis or AnalysisOptions()
        if options.pixel_size is None:
            options = replace(options, pixel_size=image.calibration.micrometres_per_pixel)
        recorder = None
        if outputs.metrics:
            class_names = segmenter.metadata.class_names
            recorder = MetricsRecorder(
                outputs.metrics, image.axes, image.shape, class_names, options, figures
            )
        for normalized in prepared:
            prediction = segmenter.predict_prepared(normalized, fmt)
            masks.write(prediction.labels)
            if probabilities and prediction.probabilities is not None:
                probabilities.write(prediction.probabilities)
            if overlays:
                overlays.write(overlay(normalized[0], prediction.labels))
            if recorder:
                recorder.add(prediction.labels)
            advance(1)
    if recorder:  # after every image output is in place
        recorder.finish()
