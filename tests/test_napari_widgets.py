"""The napari plugin in a real viewer (pytest-qt, napari's make_napari_viewer) on a
display: `make test` runs the suite under Xvfb (tools/virtual_display.sh), where these
tests must run; elsewhere, without a display, they are skipped, saying why."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    if os.environ.get("ERNET_VIEWER_TESTS") == "required":
        pytest.fail("the napari widget tests must run here, but there is no display", pytrace=False)
    pytest.skip(
        "the napari widget tests need a display: run them under xvfb-run (make test does)",
        allow_module_level=True,
    )

from ernet.runtime import RunSpec, Segmenter  # noqa: E402
from ernet.runtime.analysis import AnalysisOptions  # noqa: E402
from ernet.runtime.napari_plugin.measure import measure_labels  # noqa: E402
from ernet.runtime.napari_plugin.segment import ImageLayout, SegmentOptions, segment_layer  # noqa: E402
from ernet.runtime.napari_plugin.widgets import CURRENT_PLANE, MODEL_FILE, JobPanel  # noqa: E402
from ernet.runtime.postprocess import label_rgba  # noqa: E402

SAMPLE = ("ernet", "synthetic-er-timelapse")
#: Where the README's screenshot is written when this is set (make screenshot).
SCREENSHOT = os.environ.get("ERNET_NAPARI_SCREENSHOT")


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Capture no DEBUG records: pymmcore-plus (test_acquisition) sets the root logger to
    DEBUG on import, and napari's DEBUG records would keep its viewers alive in the
    captured log, failing make_napari_viewer's leak check."""
    caplog.set_level(logging.WARNING)


def finish(job: Any) -> Any:
    while True:
        try:
            next(job)
        except StopIteration as done:
            return done.value


def dock(viewer: Any, name: str) -> Any:
    """The plugin's widget, docked as napari's Plugins menu does."""
    _, widget = viewer.window.add_plugin_dock_widget("ernet", name)
    return widget


def run(qtbot: Any, panel: JobPanel) -> None:
    """Click the panel's run button and wait for its job to end."""
    panel.run_button.native.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=120_000)


def errors() -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    return [str(n.message) for n in notification_manager.records if n.severity == NotificationSeverity.ERROR]


@pytest.fixture
def sample(make_napari_viewer: Any) -> tuple[Any, Any]:
    """A viewer with the sample time-lapse and its truth, calibrated: 2 s a frame, 0.05 µm
    pixels, moved."""
    viewer = make_napari_viewer()
    image, truth = viewer.open_sample(*SAMPLE)
    for layer in (image, truth):
        layer.scale, layer.translate = (2.0, 0.05, 0.05), (10.0, 1.0, 2.0)
        layer.units = ("second", "micrometer", "micrometer")
    viewer.dims.axis_labels = ("t", "y", "x")
    return viewer, image


def test_segment_er_adds_labels_over_the_image(sample: tuple[Any, Any], qtbot: Any) -> None:
    viewer, image = sample
    widget = dock(viewer, "Segment ER")
    widget.image.value, widget.provider.value = image, "cpu"
    run(qtbot, widget.jobs)
    labels = viewer.layers["synthetic ER labels"]
    assert labels.data.shape == image.data.shape and labels.data.dtype == np.uint8
    assert set(np.unique(labels.data)) == {0, 1}
    expected = finish(
        segment_layer(
            Segmenter(RunSpec("default", "cpu")), image.data, ImageLayout(image.data.shape), SegmentOptions()
        )
    )
    np.testing.assert_array_equal(labels.data, expected.labels)
    np.testing.assert_array_equal(labels.scale, image.scale)
    np.testing.assert_array_equal(labels.translate, image.translate)
    assert labels.units == image.units
    np.testing.assert_allclose(labels.colormap.map(np.array([1]))[0], np.array(label_rgba(1)) / 255)
    assert widget.jobs.status.value == "ran on onnxruntime/CPUExecutionProvider"
    assert widget.jobs.progress.value == widget.jobs.progress.max == 10
    # A rerun replaces the layers (in place), now with probabilities; one without drops them.
    widget.probabilities.value = True
    run(qtbot, widget.jobs)
    names = [layer.name for layer in viewer.layers]
    assert names.count("synthetic ER labels") == 1 and names.count("synthetic ER probabilities") == 1
    assert names.index("synthetic ER labels") == names.index("synthetic ER truth") + 1
    probabilities = viewer.layers["synthetic ER probabilities"]
    assert probabilities.data.shape == image.data.shape and probabilities.data.dtype == np.uint8
    widget.probabilities.value = False
    run(qtbot, widget.jobs)
    assert [layer.name for layer in viewer.layers].count("synthetic ER probabilities") == 0


def test_the_current_plane_alone(sample: tuple[Any, Any], qtbot: Any) -> None:
    viewer, image = sample
    widget = dock(viewer, "Segment ER")
    widget.image.value, widget.provider.value, widget.scope.value = image, "cpu", CURRENT_PLANE
    viewer.dims.set_current_step(0, 3)  # t = 16 s
    assert viewer.dims.point[0] == 16.0
    run(qtbot, widget.jobs)
    labels = viewer.layers["synthetic ER labels"].data
    assert labels[3].any() and not np.delete(labels, 3, axis=0).any()
    assert viewer.layers["synthetic ER labels"].metadata["ernet"]["plane"] == [3]


def test_a_channel_of_a_multichannel_layer(make_napari_viewer: Any, qtbot: Any) -> None:
    from ernet.training.synthetic import SyntheticConfig, generate_stack

    cell = np.stack([f.image for f in generate_stack(3, 5, SyntheticConfig(height=96, width=112))])
    viewer = make_napari_viewer()
    two = viewer.add_image(np.stack([cell[::-1], cell], axis=1), name="two", scale=(1, 3, 0.1, 0.1))
    widget = dock(viewer, "Segment ER")
    widget.image.value, widget.provider.value = two, "cpu"
    assert [label for label, _ in widget._channel_axes()] == ["none", "axis 0 (-4)", "axis 1 (-3)"]
    widget.channel_axis.value, widget.channel.value = 1, 1
    assert widget.channel.max == 1
    run(qtbot, widget.jobs)
    labels = viewer.layers["two labels"]
    expected = finish(
        segment_layer(Segmenter(RunSpec("default", "cpu")), cell, ImageLayout(cell.shape), SegmentOptions())
    )
    assert labels.data.shape == (3, 1, 96, 112)
    np.testing.assert_array_equal(labels.data[:, 0], expected.labels)
    np.testing.assert_array_equal(labels.translate, [0, 3, 0, 0])  # over channel 1
    rgb = viewer.add_image(np.stack([cell[0]] * 3, axis=-1), name="rgb", rgb=True)
    widget.image.value = rgb
    assert widget.channel_axis.choices == (None,) and widget.channel.max == 2
    run(qtbot, widget.jobs)
    np.testing.assert_array_equal(viewer.layers["rgb labels"].data, expected.labels[0])


def test_cancel_stops_the_run_and_adds_nothing(
    sample: tuple[Any, Any], qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer, image = sample
    widget = dock(viewer, "Segment ER")
    widget.image.value, widget.provider.value = image, "cpu"
    clicked, frames = threading.Event(), []
    predict = Segmenter.predict_prepared

    def held(self: Segmenter, *args: Any, **kwargs: Any) -> Any:  # frame 2 waits for the click
        frames.append(1)
        if len(frames) > 1:
            assert clicked.wait(30)
        return predict(self, *args, **kwargs)

    def cancel_after_the_first(value: int) -> None:
        if value == 1:
            widget.jobs.cancel_button.native.click()
            clicked.set()

    monkeypatch.setattr(Segmenter, "predict_prepared", held)
    widget.jobs.progress.changed.connect(cancel_after_the_first)
    run(qtbot, widget.jobs)
    # The worker stops before frame 2 if it sees the click first, else after it.
    assert len(frames) in (1, 2) and widget.jobs.status.value == f"cancelled after {len(frames)} of 10"
    assert "synthetic ER labels" not in viewer.layers
    assert widget.jobs.run_button.enabled and not widget.jobs.cancel_button.enabled


def test_errors_are_one_notification_line(sample: tuple[Any, Any], qtbot: Any, tmp_path: Path) -> None:
    viewer, image = sample
    widget = dock(viewer, "Segment ER")
    bad = tmp_path / "broken.onnx"
    bad.write_text("not a model")
    widget.image.value, widget.model.value, widget.model_file.value = image, MODEL_FILE, bad
    before = len(errors())
    run(qtbot, widget.jobs)
    (line,) = errors()[before:]  # one notification, one line
    assert line == widget.jobs.status.value and line.startswith(f"synthetic ER: {bad}: ") and "\n" not in line
    assert "synthetic ER labels" not in viewer.layers and widget.jobs.run_button.enabled
    viewer.layers.clear()
    run(qtbot, widget.jobs)
    (line,) = errors()[before + 1 :]
    assert line.startswith("no image layer to segment")


def test_measure_er_network_table_csv_and_skeleton(
    sample: tuple[Any, Any], qtbot: Any, tmp_path: Path
) -> None:
    viewer, image = sample
    truth = viewer.layers["synthetic ER truth"]
    widget = dock(viewer, "Measure ER network")
    widget.layer.value, widget.skeleton.value = truth, True
    run(qtbot, widget.jobs)
    table = widget.table.to_dict("split")
    assert len(table["data"]) == 10 and list(table["columns"][:2]) == ["frame", "t"]
    assert "total_length [um]" in table["columns"]
    options = AnalysisOptions(pixel_size=0.05)  # the widget's defaults, the layer's pixel size
    expected = finish(measure_labels(truth.data, options=options, axis_names=["t"], skeleton=True))
    nodes = table["columns"].index("nodes")
    assert [row[nodes] for row in table["data"]] == [row["nodes"] for row in expected.rows]
    skeleton = viewer.layers["synthetic ER truth skeleton"]
    np.testing.assert_array_equal(skeleton.data, expected.skeleton)
    widget.csv_path.value = tmp_path / "metrics.csv"
    widget.save_button.native.click()
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(lines) == 11 and lines[0].startswith("frame,t,er_area_fraction,er_area [um2]")
    assert widget.jobs.status.value == f"wrote {tmp_path / 'metrics.csv'}"


def test_screenshot_of_the_plugin_at_work(make_napari_viewer: Any, qtbot: Any, tmp_path: Path) -> None:
    """The README's picture: the sample, its labels, the Segment ER widget."""
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1280, 800)
    image, _ = viewer.open_sample(*SAMPLE)
    widget = dock(viewer, "Segment ER")
    widget.image.value, widget.provider.value = image, "cpu"
    run(qtbot, widget.jobs)
    viewer.dims.set_current_step(0, 4)
    viewer.layers["synthetic ER labels"].opacity = 0.5
    path = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "napari.png"
    shot = viewer.screenshot(str(path), canvas_only=False, flash=False)
    magenta = (shot[..., 0] > 150) & (shot[..., 1] < 110) & (shot[..., 2] > 150)
    assert path.is_file() and magenta.sum() > 1000  # the labels are drawn over the image
