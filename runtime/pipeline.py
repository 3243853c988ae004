"""Files through the model: one input source to its output files, in bounded memory.

``segment_image`` reads a :class:`~ernet.runtime.io.Source` frame by frame, runs each
through the segmenter's stream (reading and normalising overlap with the model) and
hands masks, probabilities and overlays to writers chosen by their output names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from .analysis import AnalysisOptions, MetricsRecorder
from .errors import InputError
from .io import Source, Writer, input_stem, open_writer
from .postprocess import ProbabilityFormat, overlay, overlay_legend
from .preprocess import stack_range
from .resources import available_memory
from .segmenter import Segmenter, without_contrast

log = logging.getLogger(__name__)


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


T = TypeVar("T")


@dataclass
class Timings:
    """Where one input's time went, in seconds: segmentation (reading, normalising, the
    model, stitching) and network analysis (metrics and figures)."""

    segmentation: float = 0.0
    analysis: float = 0.0

    def add(self, other: Timings) -> None:
        """Count ``other``'s time too."""
        self.segmentation += other.segmentation
        self.analysis += other.analysis


def _timed(items: Iterable[T], timings: Timings) -> Iterator[T]:
    """``items``, with the time spent producing each added to ``timings.segmentation``."""
    iterator = iter(items)
    while True:
        start = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        finally:
            timings.segmentation += time.perf_counter() - start
        yield item


def segment_image(
    segmenter: Segmenter,
    source: Source,
    outputs: Outputs,
    *,
    normalize_over: Literal["frame", "stack"] = "frame",
    analysis: AnalysisOptions | None = None,
    figures: bool = False,
    advance: Callable[[int], None] = lambda n: None,
    check_memory: bool = True,
) -> Timings:
    """Segment every frame of ``source`` into ``outputs``, in bounded memory.

    Frames are read and normalised on one thread, run through the model on the
    caller's, and written page by page on writer threads. Outputs keep the input's
    axes and calibration and record how they were made; each appears only when
    complete. With ``outputs.metrics``, network metrics of every frame go to a CSV
    (``analysis`` options; by default the model's network classes and the pixel size
    of the input), with ``figures`` also a graph PNG per frame and a time series.
    Frames that would need more memory than is available are refused before any is
    read, unless ``check_memory`` is False. Masks, overlays and metrics leave out the
    foreground pieces the segmenter drops (``min_object_size``); probabilities stay the
    model's. Returns where the time went.
    """
    timings = Timings()
    if check_memory:
        _check_memory(segmenter, source, outputs)
    start = time.perf_counter()  # the first pass over a stack is segmentation time too
    value_range = stack_range(segmenter.normalization, source.frames()) if normalize_over == "stack" else None
    timings.segmentation += time.perf_counter() - start
    description = run_description(segmenter, source, normalize_over, value_range)
    lead_axes, lead_shape = source.axes[:-2], source.shape[:-2]
    height, width = source.frame_shape
    with ExitStack() as files:

        def writer(path: Path, shape: tuple[int, ...], axes: str, dtype: str, **recorded: Any) -> Writer:
            return files.enter_context(
                open_writer(
                    path,
                    shape,
                    axes,
                    dtype,
                    source.calibration,
                    description={**description, **recorded},
                    overwrite=outputs.overwrite,
                )
            )

        masks = writer(outputs.mask, source.shape, source.axes, "uint8")
        probabilities = overlays = None
        if outputs.probabilities:
            shape, axes = probabilities_layout(segmenter, source)
            probabilities = writer(outputs.probabilities, shape, axes, outputs.probability_format)
        if outputs.overlay:
            legend = overlay_legend(segmenter.contract.class_names)
            shape = (*lead_shape, height, width, 3)
            overlays = writer(outputs.overlay, shape, lead_axes + "YXS", "uint8", legend=legend)
        recorder = _recorder(segmenter, source, outputs, analysis, figures)
        fmt = outputs.probability_format if probabilities else None
        flat = []  # frames without contrast
        predictions = _timed(segmenter.stream(source.frames(), value_range, fmt), timings)
        for index, (normalized, prediction) in enumerate(predictions):
            if not prediction.contrast:
                flat.append(index)
            labels = prediction.labels
            masks.write(labels)
            if probabilities and prediction.probabilities is not None:
                probabilities.write(prediction.probabilities)
            if overlays:
                overlays.write(overlay(normalized[0], labels))
            if recorder:
                start = time.perf_counter()
                recorder.add(labels)
                timings.analysis += time.perf_counter() - start
            advance(1)
    if recorder:  # after every image output is in place
        start = time.perf_counter()
        recorder.finish()
        timings.analysis += time.perf_counter() - start
    if flat:
        log.warning("note: %s: %s", source.path, without_contrast(flat, source.n_frames))
    return timings


def probabilities_layout(segmenter: Segmenter, source: Source) -> tuple[tuple[int, ...], str]:
    """The shape and axes of ``source``'s probabilities: a ``C`` axis of classes before ``YX``."""
    return (*source.shape[:-2], segmenter.n_classes, *source.frame_shape), source.axes[:-2] + "CYX"


def run_description(
    segmenter: Segmenter,
    source: Source,
    normalize_over: Literal["frame", "stack"],
    value_range: tuple[float, float] | None,
) -> dict[str, Any]:
    """What outputs record of how they were made: the input, the model and its tiling,
    the normalisation (and a stack's range)."""
    return {
        "source": source.path.name,
        **segmenter.describe(source.frame_shape),
        "normalized_over": normalize_over,
        "value_range": value_range,
    }


def _check_memory(segmenter: Segmenter, source: Source, outputs: Outputs) -> None:
    """InputError if segmenting ``source``'s frames needs more memory than is available."""
    height, width = source.frame_shape
    fmt = outputs.probability_format if outputs.probabilities else None
    need, available = segmenter.frame_bytes(height, width, fmt), available_memory()
    if available is not None and need > available:
        raise InputError(
            f"{source.path}: a {height}x{width} frame needs about {need / 2**30:.1f} GiB to segment, "
            f"{available / 2**30:.1f} GiB are available (--no-memory-check tries anyway)"
        )


def _recorder(
    segmenter: Segmenter, source: Source, outputs: Outputs, analysis: AnalysisOptions | None, figures: bool
) -> MetricsRecorder | None:
    """The metrics recorder of ``outputs.metrics``, with the model's network classes and
    the input's pixel size unless ``analysis`` sets them."""
    if not outputs.metrics:
        return None
    options = analysis or AnalysisOptions()
    defaults: dict[str, Any] = {}
    if options.pixel_size is None:
        defaults["pixel_size"] = source.calibration.micrometres_per_pixel
    if options.classes is None:
        defaults["classes"] = segmenter.contract.network_classes
    options = replace(options, **defaults)
    return MetricsRecorder(
        outputs.metrics,
        source.axes,
        source.shape,
        segmenter.contract.class_names,
        options,
        figures,
        name=input_stem(source.path),
        frame_interval=source.calibration["T"],
        overwrite=outputs.overwrite,
    )
