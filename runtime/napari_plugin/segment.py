"""Segmenting a viewer's image layer: the plain functions behind the Segment ER widget
(layer data and options in, layer data out), free of Qt and napari.

A layer's last two axes are Y and X (before the colour samples of an RGB layer); one
leading axis may hold channels, and the other leading axes (time, depth...) enumerate
its planes. Labels keep the layer's shape, less the colour samples, with the channel
axis reduced to the one channel segmented (placed there by the layer's translate), so
that napari, which aligns layers by their last axes, shows them over their image.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..arrays import FrameLayout, segment_array_steps
from ..errors import InputError
from ..postprocess import label_rgba
from ..preprocess import stack_range
from ..segmenter import Segmenter
from ..spec import RunSpec

#: Names given to the leading axes of a layer for segment_array (any but C, S, Y and X).
LEAD_LETTERS = "TZABDEFGHIJKLMNOPQRUVW"
#: What napari expects of a layer's data with its options: (data, keyword arguments, layer type).
LayerData = tuple[Any, dict[str, Any], str]
Progress = tuple[int, int]


@dataclass(frozen=True)
class LayerGeometry:
    """Where a layer lies in the world: per axis (of the layer's dims, not its colour
    samples) its scale, translate and unit."""

    scale: tuple[float, ...]
    translate: tuple[float, ...]
    units: tuple[str, ...]

    def kwargs(self) -> dict[str, Any]:
        """The layer keyword arguments that place a layer here."""
        return {"scale": self.scale, "translate": self.translate, "units": self.units}


@dataclass(frozen=True)
class ImageLayout:
    """How an image layer's data is laid out: its shape, whether its last axis holds
    colour samples (an RGB layer) and which leading axis, if any, holds channels."""

    shape: tuple[int, ...]
    rgb: bool = False
    channel_axis: int | None = None

    def __post_init__(self) -> None:
        spatial = len(self.shape) - (1 if self.rgb else 0)
        if spatial < 2:
            raise InputError(
                f"an image of shape {self.shape} has no Y and X: Segment ER takes 2-D planes or their stacks"
            )
        if self.channel_axis is not None and not 0 <= self.channel_axis < spatial - 2:
            raise InputError(
                f"axis {self.channel_axis} cannot hold channels: it must be one of the "
                f"{spatial - 2} axes before Y and X"
            )
        if self.rgb and self.channel_axis is not None:
            raise InputError("an RGB image has its channels in its colour samples")

    @property
    def plane_axes(self) -> tuple[int, ...]:
        """The leading axes that enumerate planes (all but Y, X and channels)."""
        spatial = len(self.shape) - (3 if self.rgb else 2)
        return tuple(d for d in range(spatial) if d != self.channel_axis)

    @property
    def has_channels(self) -> bool:
        return self.rgb or self.channel_axis is not None

    @property
    def channels(self) -> int:
        """How many channels a plane has (1 without a channel axis)."""
        if self.rgb:
            return self.shape[-1]
        return self.shape[self.channel_axis] if self.channel_axis is not None else 1

    def axes(self) -> str:
        """The axes' names for :func:`~ernet.runtime.arrays.segment_array`."""
        n = len(self.shape) - (1 if self.rgb else 0)
        leading = iter(LEAD_LETTERS)
        names = ["C" if d == self.channel_axis else next(leading) for d in range(n - 2)]
        return "".join(names) + "YX" + ("S" if self.rgb else "")

    @property
    def labels_shape(self) -> tuple[int, ...]:
        """The labels' shape: the layer's, less the colour samples, with one channel."""
        shape = list(self.shape[:-1] if self.rgb else self.shape)
        if self.channel_axis is not None:
            shape[self.channel_axis] = 1
        return tuple(shape)

    def labels_geometry(self, image: LayerGeometry, channel: int | None) -> LayerGeometry:
        """The image's geometry, moved along the channel axis to the channel segmented."""
        if self.channel_axis is None or channel is None:
            return image
        translate = list(image.translate)
        translate[self.channel_axis] += channel * image.scale[self.channel_axis]
        return LayerGeometry(image.scale, tuple(translate), image.units)


@dataclass(frozen=True)
class SegmentOptions:
    """What the Segment ER widget asks for, beside the image."""

    spec: RunSpec = field(default_factory=RunSpec)
    #: The channel to segment of a multichannel image (one-channel models).
    channel: int | None = None
    #: Only the plane at this index along :attr:`ImageLayout.plane_axes`; None: every plane.
    plane: tuple[int, ...] | None = None
    #: Normalise each frame on its own, or all with the stack's range.
    normalize: Literal["frame", "stack"] = "frame"
    #: Also give the foreground classes' probabilities.
    probabilities: bool = False


@dataclass(frozen=True)
class LayerSegmentation:
    """Labels of the layout's :attr:`~ImageLayout.labels_shape` (uint8 class ids; with a
    plane chosen, 0 off it), and with probabilities asked for, each foreground class's
    (uint8, 255 = certain; the class axis first where there are several)."""

    labels: np.ndarray
    probabilities: np.ndarray | None
    class_names: tuple[str, ...]
    network_classes: tuple[int, ...]
    #: How it was made (the model, the backend that ran it, its tiling...).
    description: dict[str, Any]

    @property
    def backend(self) -> str:
        """What ran the model, e.g. ``onnxruntime/CPUExecutionProvider``."""
        return str(self.description["backend"])


class SegmenterCache:
    """The last segmenter opened, kept for the next run with the same spec: opening a
    model loads it, checks it and warms it up (for TensorRT, builds an engine)."""

    def __init__(self) -> None:
        self._spec: RunSpec | None = None
        self._segmenter: Segmenter | None = None

    def get(self, spec: RunSpec) -> Segmenter:
        """A segmenter for ``spec``: the last one if its spec is the same."""
        if self._segmenter is None or spec != self._spec:
            self.close()
            self._segmenter, self._spec = Segmenter(spec), spec
        return self._segmenter

    def close(self) -> None:
        """Release the model."""
        if self._segmenter is not None:
            self._segmenter.close()
        self._segmenter = self._spec = None


def segment_layer(
    segmenter: Segmenter, data: Any, layout: ImageLayout, options: SegmentOptions
) -> Generator[Progress, None, LayerSegmentation]:
    """Segment an image layer's ``data`` (all planes, or the one chosen), yielding
    ``(done, total)`` after each plane; closing it early stops the work."""
    one_channel = segmenter.contract.in_channels == 1
    channel = options.channel if layout.has_channels and one_channel else None
    segment = _segment_stack if options.plane is None else _segment_plane
    labels, probabilities = yield from segment(segmenter, data, layout, options, channel)
    if probabilities is not None and len(probabilities) == 1:
        probabilities = probabilities[0]  # a binary model: the ER probability alone
    description = {
        **segmenter.describe((layout.labels_shape[-2], layout.labels_shape[-1])),
        "fallbacks": [f"{name}: {reason}" for name, reason in segmenter.backend.fallbacks],
        "normalized_over": options.normalize,
        "plane": list(options.plane) if options.plane is not None else None,
        "channel": channel,
    }
    contract = segmenter.contract
    return LayerSegmentation(
        labels, probabilities, tuple(contract.class_names), tuple(contract.network_class_ids), description
    )


#: Labels, and the foreground classes' probabilities (class axis first), in the layout's shape.
Segmented = tuple[np.ndarray, np.ndarray | None]


def _segment_stack(
    segmenter: Segmenter, data: Any, layout: ImageLayout, options: SegmentOptions, channel: int | None
) -> Generator[Progress, None, Segmented]:
    """Every plane, through segment_array."""
    result = yield from segment_array_steps(
        segmenter,
        data,
        layout.axes(),
        channel=channel,
        probabilities="uint8" if options.probabilities else None,
        normalize=options.normalize,
    )
    labels, probabilities = result.labels, result.probabilities
    if probabilities is not None:  # lead axes, C, Y, X -> foreground classes, lead axes, Y, X
        probabilities = np.moveaxis(probabilities, -3, 0)[1:]
    if layout.channel_axis is not None:
        labels = np.expand_dims(labels, layout.channel_axis)
        if probabilities is not None:
            probabilities = np.expand_dims(probabilities, layout.channel_axis + 1)
    return labels, probabilities


def _segment_plane(
    segmenter: Segmenter, data: Any, layout: ImageLayout, options: SegmentOptions, channel: int | None
) -> Generator[Progress, None, Segmented]:
    """The plane chosen, normalised on its own or with the whole stack's range; 0 elsewhere."""
    plane = options.plane or ()
    if len(plane) != len(layout.plane_axes) or any(
        not 0 <= i < layout.shape[d] for i, d in zip(plane, layout.plane_axes, strict=False)
    ):
        raise InputError(f"plane {plane} is not one of the planes of an image of shape {layout.shape}")
    axes, in_channels = layout.axes(), segmenter.contract.in_channels
    position = dict(zip(layout.plane_axes, plane, strict=True))
    key = tuple(position.get(d, slice(None)) for d in range(len(layout.shape)))
    plane_axes = "".join(a for d, a in enumerate(axes) if d not in position)
    chosen = data[key]  # read once (a zarr or dask layer's plane)
    (frame,) = FrameLayout.of(plane_axes, np.shape(chosen), in_channels, channel).frames(chosen)
    value_range = None
    if options.normalize == "stack":
        whole = FrameLayout.of(axes, tuple(np.shape(data)), in_channels, channel)
        value_range = stack_range(segmenter.normalization, whole.frames(data))
    prediction = segmenter.predict(frame, value_range, "uint8" if options.probabilities else None)
    yield 1, 1
    if layout.channel_axis is not None:
        position[layout.channel_axis] = 0
    where = tuple(position.get(d, slice(None)) for d in range(len(layout.labels_shape)))
    labels = np.zeros(layout.labels_shape, np.uint8)
    labels[where] = prediction.labels
    probabilities = None
    if prediction.probabilities is not None:
        probabilities = np.zeros((segmenter.n_classes - 1, *layout.labels_shape), np.uint8)
        probabilities[(slice(None), *where)] = prediction.probabilities[1:]
    return labels, probabilities


def class_colours(n_classes: int) -> dict[int | None, list[float]]:
    """A Labels layer's colour (RGBA, 0-1) of each class id: those of the overlays and
    image-labels (:func:`~ernet.runtime.postprocess.label_rgba`); background and ids of
    no class transparent."""
    colours: dict[int | None, list[float]] = {k: [c / 255 for c in label_rgba(k)] for k in range(n_classes)}
    colours[None] = [0.0, 0.0, 0.0, 0.0]
    return colours


def labels_layer(result: LayerSegmentation, name: str, geometry: LayerGeometry, source: str) -> LayerData:
    """The Labels layer of ``result``: one colour per class (background transparent),
    the image's geometry, and what made it in its metadata."""
    metadata = {
        "ernet": {
            "source": source,
            "class_names": list(result.class_names),
            "network_classes": list(result.network_classes),
            **result.description,
        }
    }
    kwargs = {"name": name, "colormap": class_colours(len(result.class_names)), "metadata": metadata}
    return result.labels, {**kwargs, **geometry.kwargs()}, "labels"


def probabilities_layer(
    result: LayerSegmentation, name: str, geometry: LayerGeometry, source: str
) -> LayerData | None:
    """The Image layer of ``result``'s probabilities (None where none were asked for);
    a leading class axis is placed with unit steps."""
    if result.probabilities is None:
        return None
    foreground = result.class_names[1:]
    if result.probabilities.ndim > result.labels.ndim:
        geometry = LayerGeometry(
            (1.0, *geometry.scale), (0.0, *geometry.translate), ("pixel", *geometry.units)
        )
    kwargs = {
        "name": name,
        "colormap": "magma",
        "contrast_limits": (0, 255),
        "blending": "additive",
        "metadata": {"ernet": {"source": source, "classes": list(foreground), "scale": "255 = certain"}},
        **geometry.kwargs(),
    }
    return result.probabilities, kwargs, "image"
