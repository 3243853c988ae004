"""The dock widgets (magicgui, so no Qt binding is named here): thin forms over
:mod:`.segment` and :mod:`.measure`, whose work runs on napari's ``thread_worker``."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
    Table,
)
from napari.layers import Image, Labels, Layer
from napari.utils.notifications import show_error, show_info

from ..analysis import AnalysisOptions, column_header
from ..errors import REPORTED, error_line
from ..models import EMBEDDED
from ..spec import Provider, RunSpec
from .measure import NetworkMeasurement, label_classes, measure_labels, pixel_size_of, skeleton_layer
from .segment import (
    ImageLayout,
    LayerData,
    LayerGeometry,
    LayerSegmentation,
    Progress,
    SegmenterCache,
    SegmentOptions,
    labels_layer,
    probabilities_layer,
    segment_layer,
)

if TYPE_CHECKING:
    import napari
    from napari.qt.threading import GeneratorWorker

#: The scope choices of both widgets.
WHOLE_STACK, CURRENT_PLANE = "whole stack", "current plane"
#: The model choice that takes a file.
MODEL_FILE = "file..."
#: Suffixes of native TensorRT engines (the rest are ONNX models or bioimage.io packages).
ENGINE_SUFFIXES = (".plan", ".engine")


@dataclass(frozen=True)
class Failed:
    """A job that stopped on an error it reports in one line."""

    message: str


def _reported(job: Generator[Progress, None, Any], subject: str) -> Generator[Progress, None, Any]:
    """``job``, with the errors users cause (a bad file, a wrong shape) returned as
    :class:`Failed` rather than raised: they become one notification line, after the
    ``subject`` (the layer), and only faults of the plugin itself reach napari's error
    handler with their traceback."""
    try:
        return (yield from job)
    except REPORTED as exc:
        return Failed(about(subject, exc))


def about(subject: str | None, exc: BaseException) -> str:
    """The one line that reports ``exc``, after the layer it concerns unless it names it."""
    line = error_line(exc)
    return line if subject is None or line.startswith(f"{subject}:") else f"{subject}: {line}"


class JobPanel(Container):
    """Run and Cancel buttons, a progress bar and a status line for one job at a time,
    run on napari's ``thread_worker`` (progress also in napari's activity dock)."""

    def __init__(self, run_text: str) -> None:
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1, label="progress")
        self.status = Label(value="", label="status")
        super().__init__(widgets=[self.run_button, self.cancel_button, self.progress, self.status])
        self.cancel_button.changed.connect(self.cancel)
        self.worker: GeneratorWorker[Progress, None, Any] | None = None

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(
        self,
        job: Generator[Progress, None, Any],
        total: int,
        what: str,
        subject: str,
        on_result: Callable[[Any], str],
    ) -> None:
        """Run ``job`` (``total`` steps, ``what`` it does to the layer ``subject``);
        ``on_result(value)`` takes its result on the GUI thread and says what was done
        (the status line)."""
        from napari.qt.threading import create_worker

        worker: GeneratorWorker[Progress, None, Any] = create_worker(
            _reported, job, subject, _progress={"total": total, "desc": f"{what}: {subject}"}
        )
        self.progress.max, self.progress.value = total, 0
        self.status.value = f"{what}..."
        worker.yielded.connect(self._advance)
        worker.returned.connect(lambda value: self._finish(value, subject, on_result))
        worker.aborted.connect(lambda: self._say(f"cancelled after {self.progress.value} of {total}"))
        worker.errored.connect(lambda exc: self._say(f"failed: {error_line(exc)}"))
        worker.finished.connect(lambda: self._stopped(job))
        self.worker = worker
        self.run_button.enabled, self.cancel_button.enabled = False, True
        worker.start()

    def cancel(self) -> None:
        """Ask the running job to stop after its current step."""
        if self.worker is not None:
            self.cancel_button.enabled = False
            self.status.value = "cancelling..."
            self.worker.quit()

    def _advance(self, step: Progress) -> None:
        done, total = step
        self.progress.max, self.progress.value = total, done

    def _finish(self, value: Any, subject: str, on_result: Callable[[Any], str]) -> None:
        if not isinstance(value, Failed):
            try:
                self._say(on_result(value))
                return
            except REPORTED as exc:
                value = Failed(about(subject, exc))
        self._say(value.message)
        show_error(value.message)

    def _say(self, text: str) -> None:
        self.status.value = text

    def _stopped(self, job: Generator[Progress, None, Any]) -> None:
        job.close()  # a cancelled job stops its read-ahead here
        self.worker = None
        self.run_button.enabled, self.cancel_button.enabled = True, False


def layer_geometry(layer: Layer) -> LayerGeometry:
    """Where ``layer`` lies: its scale, translate and units (as text)."""
    return LayerGeometry(
        tuple(map(float, layer.scale)), tuple(map(float, layer.translate)), tuple(str(u) for u in layer.units)
    )


def full_resolution(layer: Layer) -> Any:
    """A layer's data, or a multiscale layer's first (full-resolution) level."""
    return layer.data[0] if layer.multiscale else layer.data


def current_index(viewer: napari.Viewer, layer: Layer) -> tuple[int, ...]:
    """The data index of ``layer`` at the viewer's current position, along each of its dims."""
    coords = layer.world_to_data(viewer.dims.point)
    shape = full_resolution(layer).shape
    return tuple(
        int(np.clip(np.round(c), 0, n - 1)) for c, n in zip(coords, shape[: layer.ndim], strict=True)
    )


def put_layer(viewer: napari.Viewer, data: LayerData) -> Layer:
    """Add a layer, replacing at its place the plugin's earlier layer of that name."""
    layer = Layer.create(*data)
    old = _plugin_layer(viewer, layer.name)
    if old is None:
        viewer.add_layer(layer)
    else:
        index = viewer.layers.index(old)
        viewer.layers.remove(old)
        viewer.layers.insert(index, layer)
    return layer


def drop_layer(viewer: napari.Viewer, name: str) -> None:
    """Remove the plugin's layer of that name, if any (a result the last run did not make)."""
    old = _plugin_layer(viewer, name)
    if old is not None:
        viewer.layers.remove(old)


def _plugin_layer(viewer: napari.Viewer, name: str) -> Layer | None:
    return next((lay for lay in viewer.layers if lay.name == name and "ernet" in lay.metadata), None)


class SegmentWidget(Container):
    """Segment ER: an image layer (a plane or the whole stack) into a Labels layer."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        self.viewer = napari_viewer
        self.image = ComboBox(label="image", choices=self._images)
        self.scope = ComboBox(label="segment", choices=[WHOLE_STACK, CURRENT_PLANE], value=WHOLE_STACK)
        self.channel_axis = ComboBox(label="channel axis", choices=self._channel_axes)
        self.channel = SpinBox(label="channel", min=0, max=0)
        self.model = ComboBox(label="model", choices=[*EMBEDDED, MODEL_FILE], value=EMBEDDED[0])
        self.model_file = FileEdit(label="model file", filter="*.onnx *.zip *.plan *.engine", visible=False)
        self.provider = ComboBox(label="provider", choices=list(get_args(Provider)), value="auto")
        self.tile = SpinBox(label="tile (0: auto)", min=0, max=16384, step=32, value=0)
        self.normalize = ComboBox(label="normalise", choices=["frame", "stack"], value="frame")
        self.probabilities = CheckBox(label="probabilities layer", value=False)
        self.jobs = JobPanel("Segment")
        super().__init__(
            widgets=[
                self.image,
                self.scope,
                self.channel_axis,
                self.channel,
                self.model,
                self.model_file,
                self.provider,
                self.tile,
                self.normalize,
                self.probabilities,
                self.jobs,
            ]
        )
        self.segmenters = SegmenterCache()
        self.image.changed.connect(self._image_changed)
        self.channel_axis.changed.connect(self._channels_changed)
        self.model.changed.connect(
            lambda: setattr(self.model_file, "visible", self.model.value == MODEL_FILE)
        )
        self.jobs.run_button.changed.connect(self.run)
        self._image_changed()

    def _images(self, _: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Image)]

    def _channel_axes(self, _: Any = None) -> list[tuple[str, int | None]]:
        image = self.image.value
        if image is None or image.rgb:
            return [("colour samples" if image is not None else "none", None)]
        labels = self.viewer.dims.axis_labels[-image.ndim :]
        return [("none", None), *((f"axis {d} ({labels[d]})", d) for d in range(image.ndim - 2))]

    def _image_changed(self) -> None:
        self.channel_axis.reset_choices()
        self._channels_changed()

    def _channels_changed(self) -> None:
        image = self.image.value
        channels = 1 if image is None else self._image_layout(image).channels
        self.channel.max = channels - 1
        self.channel.enabled = channels > 1

    def _image_layout(self, image: Image) -> ImageLayout:
        """How ``image``'s data is laid out, with the channel axis chosen."""
        return ImageLayout(tuple(full_resolution(image).shape), image.rgb, self.channel_axis.value)

    def spec(self) -> RunSpec:
        """The run spec the form describes."""
        tile = self.tile.value or None
        if self.model.value != MODEL_FILE:
            return RunSpec(Path(self.model.value), self.provider.value, tile=tile)
        path = Path(str(self.model_file.value))
        if path.suffix.lower() in ENGINE_SUFFIXES:
            return RunSpec(engine=path, provider="tensorrt", tile=tile)
        return RunSpec(path, self.provider.value, tile=tile)

    def run(self) -> None:
        """Segment the image chosen, as the form says (errors: a notification)."""
        image = self.image.value
        try:
            if image is None:
                raise ValueError("no image layer to segment: open one (File ▸ Open Sample ▸ ERNet)")
            data = full_resolution(image)
            layout = self._image_layout(image)
            plane = None
            if self.scope.value == CURRENT_PLANE:
                index = current_index(self.viewer, image)
                plane = tuple(index[d] for d in layout.plane_axes)
            options = SegmentOptions(
                self.spec(), self.channel.value, plane, self.normalize.value, self.probabilities.value
            )
        except REPORTED as exc:
            show_error(about(image.name if image is not None else None, exc))
            return
        total = 1 if plane is not None else int(np.prod([layout.shape[d] for d in layout.plane_axes]))
        job = self._job(data, layout, options)
        self.jobs.start(
            job, total, "Segment ER", image.name, lambda result: self._show(result, image, layout)
        )

    def _job(
        self, data: Any, layout: ImageLayout, options: SegmentOptions
    ) -> Generator[Progress, None, LayerSegmentation]:
        segmenter = self.segmenters.get(options.spec)  # opened on the worker: loading takes a while
        return (yield from segment_layer(segmenter, data, layout, options))

    def _show(self, result: LayerSegmentation, image: Image, layout: ImageLayout) -> str:
        geometry = layout.labels_geometry(layer_geometry(image), result.description["channel"])
        probabilities = probabilities_layer(result, f"{image.name} probabilities", geometry, image.name)
        if probabilities is None:
            drop_layer(self.viewer, f"{image.name} probabilities")
        else:
            put_layer(self.viewer, probabilities)
        put_layer(self.viewer, labels_layer(result, f"{image.name} labels", geometry, image.name))
        notes = (
            "; not used: " + "; ".join(result.description["fallbacks"])
            if result.description["fallbacks"]
            else ""
        )
        return f"ran on {result.backend}{notes}"


class MeasureWidget(Container):
    """Measure ER network: per-frame network metrics of a Labels layer, as a table and a CSV."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        self.viewer = napari_viewer
        defaults = AnalysisOptions()
        self.layer = ComboBox(label="labels", choices=self._label_layers)
        self.scope = ComboBox(label="measure", choices=[WHOLE_STACK, CURRENT_PLANE], value=WHOLE_STACK)
        self.pixel_size = FloatSpinBox(
            label="pixel size µm (0: layer's)", min=0, max=100, step=0.0001, value=0
        )
        self.min_object_size = SpinBox(
            label="min object size px", min=0, max=10**6, value=defaults.min_object_size
        )
        self.min_spur_length = FloatSpinBox(
            label="min spur length px", min=0, max=1000, value=defaults.min_spur_length
        )
        self.merge_junctions = FloatSpinBox(
            label="merge junctions within px", min=0, max=1000, value=defaults.merge_junctions_within
        )
        self.skeleton = CheckBox(label="skeleton layer", value=False)
        self.jobs = JobPanel("Measure")
        self.table = Table(label="metrics")
        self.csv_path = FileEdit(label="CSV file", mode=FileDialogMode.OPTIONAL_FILE, filter="*.csv")
        self.save_button = PushButton(text="Save CSV", enabled=False)
        super().__init__(
            widgets=[
                self.layer,
                self.scope,
                self.pixel_size,
                self.min_object_size,
                self.min_spur_length,
                self.merge_junctions,
                self.skeleton,
                self.jobs,
                self.table,
                self.csv_path,
                self.save_button,
            ]
        )
        self.measurement: NetworkMeasurement | None = None
        self.jobs.run_button.changed.connect(self.run)
        self.save_button.changed.connect(self.save)

    def _label_layers(self, _: Any = None) -> list[tuple[str, Labels]]:
        return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, Labels)]

    def run(self) -> None:
        """Measure the Labels layer chosen (errors: a notification)."""
        layer = self.layer.value
        try:
            if layer is None:
                raise ValueError("no Labels layer to measure: segment an image first (Segment ER)")
            data = full_resolution(layer)
            geometry = layer_geometry(layer)
            class_names, network = label_classes(layer.metadata)
            options = AnalysisOptions(
                classes=network,
                min_object_size=self.min_object_size.value,
                min_spur_length=self.min_spur_length.value,
                merge_junctions_within=self.merge_junctions.value,
                pixel_size=self.pixel_size.value or pixel_size_of(geometry),
            )
            lead = data.ndim - 2
            plane = current_index(self.viewer, layer)[:lead] if self.scope.value == CURRENT_PLANE else None
        except REPORTED as exc:
            show_error(about(layer.name if layer is not None else None, exc))
            return
        axis_names = [str(a) for a in self.viewer.dims.axis_labels[-layer.ndim :][:lead]]
        total = 1 if plane is not None else int(np.prod(data.shape[:lead]))
        job = measure_labels(
            data,
            class_names,
            options,
            axis_names=axis_names,
            plane=plane,
            skeleton=self.skeleton.value,
            name=layer.name,
        )
        self.jobs.start(
            job, total, "Measure ER network", layer.name, lambda m: self._show(m, layer, geometry)
        )

    def _show(self, measurement: NetworkMeasurement, layer: Labels, geometry: LayerGeometry) -> str:
        self.measurement = measurement
        columns = list(measurement.rows[0])
        headers = [column_header(c, measurement.units) for c in columns]
        self.table.value = {
            "data": [[_shown(row[c]) for c in columns] for row in measurement.rows],
            "index": [row["frame"] for row in measurement.rows],
            "columns": headers,
        }
        self.save_button.enabled = True
        name = f"{layer.name} skeleton"
        skeleton = skeleton_layer(measurement, name, geometry, layer.name)
        if skeleton is None:
            drop_layer(self.viewer, name)
        else:
            put_layer(self.viewer, skeleton)
        unit = "µm" if measurement.pixel_size else "px"
        return f"{len(measurement.rows)} frame(s) measured, lengths in {unit}"

    def save(self) -> None:
        """Write the table to the CSV file chosen."""
        if self.measurement is None:
            return
        path = Path(str(self.csv_path.value))
        try:
            if not path.name or path.is_dir():
                raise ValueError("choose a CSV file to write")
            self.measurement.save_csv(path)
        except REPORTED as exc:
            show_error(error_line(exc))
            return
        self.jobs.status.value = f"wrote {path}"
        show_info(f"wrote {path}")


def _shown(value: Any) -> Any:
    """A table cell: floats to 4 significant digits."""
    return float(f"{value:.4g}") if isinstance(value, float) else value
