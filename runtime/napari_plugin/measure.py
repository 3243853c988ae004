"""Measuring the ER network of a viewer's Labels layer: the plain functions behind the
Measure ER network widget (label data and options in, a table and a skeleton out),
free of Qt and napari. The metrics are ernet-analyze's (:func:`~ernet.runtime.analysis.analyze_frame`).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis import (
    AnalysisOptions,
    analyze_frame,
    metric_units,
    require_analysis_libraries,
    require_label_frame,
    write_metrics_csv,
)
from ..contract import BINARY_CLASSES
from ..errors import InputError
from ..io import AxisScale, Calibration
from .segment import LayerData, LayerGeometry, Progress


@dataclass(frozen=True)
class NetworkMeasurement:
    """Per frame a row (``frame``, its index along each leading axis, then the metrics),
    the metrics' units, and with the skeleton asked for, the network's skeleton (uint8,
    1 on it) in the labels' shape."""

    rows: list[dict[str, Any]]
    units: dict[str, str]
    pixel_size: float | None
    skeleton: np.ndarray | None = None

    def save_csv(self, path: Path) -> None:
        """Write the table as ernet-analyze does (units in the header), atomically."""
        write_metrics_csv(path, self.rows, self.pixel_size)


def label_classes(metadata: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """A Labels layer's class names and the classes forming the network: what Segment ER
    recorded, else binary ER (every class but 0)."""
    made = metadata.get("ernet", {})
    class_names = tuple(made.get("class_names", BINARY_CLASSES))
    network = made.get("network_classes") if len(class_names) > 2 else None
    return class_names, tuple(network) if network else None


def pixel_size_of(geometry: LayerGeometry) -> float | None:
    """The pixel side in µm where the layer's Y and X steps are in µm and equal."""
    y, x = (AxisScale(s, u) for s, u in zip(geometry.scale[-2:], geometry.units[-2:], strict=True))
    return Calibration({"Y": y, "X": x}).micrometres_per_pixel


def measure_labels(
    labels: Any,
    class_names: Sequence[str] = BINARY_CLASSES,
    options: AnalysisOptions | None = None,
    *,
    axis_names: Sequence[str] | None = None,
    plane: tuple[int, ...] | None = None,
    skeleton: bool = False,
    name: str = "labels",
) -> Generator[Progress, None, NetworkMeasurement]:
    """The network metrics of each Y x X frame of ``labels`` (or of the ``plane`` at
    that index along the leading axes), yielding ``(done, total)`` after each frame.
    ``axis_names`` name the leading axes' columns (default ``axis 0``, ...)."""
    require_analysis_libraries()
    options = options or AnalysisOptions()
    if len(labels.shape) < 2:
        raise InputError(f"{name}: a Labels layer of shape {labels.shape} has no Y and X")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{name}: labels hold integer class ids, not {labels.dtype}")
    lead_shape = tuple(labels.shape[:-2])
    names = list(axis_names) if axis_names is not None else [f"axis {d}" for d in range(len(lead_shape))]
    if len(names) != len(lead_shape):
        raise ValueError(f"{len(names)} axis names for the {len(lead_shape)} leading axes of {name}")
    if plane is not None and (
        len(plane) != len(lead_shape) or any(not 0 <= i < n for i, n in zip(plane, lead_shape, strict=False))
    ):
        raise InputError(f"{name}: plane {plane} is not one of the planes of labels of shape {labels.shape}")
    indices = [plane] if plane is not None else list(np.ndindex(*lead_shape))
    skeletons = np.zeros(labels.shape, np.uint8) if skeleton else None
    rows = []
    for done, index in enumerate(indices, start=1):
        number = int(np.ravel_multi_index(index, lead_shape)) if lead_shape else 0
        frame = np.asarray(labels[index])
        require_label_frame(frame, name, number)
        analysis = analyze_frame(frame, class_names, options)
        rows.append({"frame": number, **dict(zip(names, map(int, index), strict=True)), **analysis.metrics})
        if skeletons is not None:
            skeletons[index] = analysis.skeleton
        yield done, len(indices)
    units = metric_units(options.pixel_size, rows[0] if rows else ())
    return NetworkMeasurement(rows, units, options.pixel_size, skeletons)


def skeleton_layer(
    measurement: NetworkMeasurement, name: str, geometry: LayerGeometry, source: str
) -> LayerData | None:
    """The Labels layer of the measured skeleton (white; None where none was asked for)."""
    if measurement.skeleton is None:
        return None
    colours = {0: [0.0, 0.0, 0.0, 0.0], 1: [1.0, 1.0, 1.0, 1.0], None: [0.0, 0.0, 0.0, 0.0]}
    kwargs = {"name": name, "colormap": colours, "metadata": {"ernet": {"source": source}}}
    return measurement.skeleton, {**kwargs, **geometry.kwargs()}, "labels"
