"""The napari plugin's plain functions, without Qt or a viewer: layer data and options
in, layer data out (the widgets in test_napari_widgets.py are thin forms over these)."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ernet.runtime import RunSpec, Segmenter, segment_array
from ernet.runtime.analysis import AnalysisOptions, analyze_frame, metric_units
from ernet.runtime.errors import InputError
from ernet.runtime.napari_plugin.measure import label_classes, measure_labels, pixel_size_of, skeleton_layer
from ernet.runtime.napari_plugin.sample import SAMPLE_FRAMES, SAMPLE_SIDE, synthetic_timelapse
from ernet.runtime.napari_plugin.segment import (
    ImageLayout,
    LayerGeometry,
    SegmenterCache,
    SegmentOptions,
    labels_layer,
    probabilities_layer,
    segment_layer,
)
from ernet.runtime.postprocess import label_rgba

from conftest import run_cli

#: The geometry of a 2-D layer napari places by default: unit steps in pixels.
PIXELS = LayerGeometry((1.0, 1.0), (0.0, 0.0), ("pixel", "pixel"))


def assert_same_row(row: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal keys in the same order, and equal values (NaN equal to NaN)."""
    assert list(row) == list(expected)
    for key, value in expected.items():
        assert row[key] == value or (value != value and row[key] != row[key]), key


def finish(job: Generator[tuple[int, int], None, Any]) -> tuple[list[tuple[int, int]], Any]:
    """Run a job to its end: the progress it yielded and what it returned."""
    steps = []
    while True:
        try:
            steps.append(next(job))
        except StopIteration as done:
            return steps, done.value


@pytest.fixture(scope="module")
def binary() -> Segmenter:
    return Segmenter(RunSpec("default", "cpu"))


@pytest.fixture(scope="module")
def four_class() -> Segmenter:
    return Segmenter(RunSpec("default-4class", "cpu"))


@pytest.fixture(scope="module")
def cell() -> np.ndarray:
    """Three frames of a synthetic cell, T x Y x X uint8."""
    from ernet.training.synthetic import SyntheticConfig, generate_stack

    return np.stack([f.image for f in generate_stack(3, 5, SyntheticConfig(height=96, width=112))])


def test_layouts_name_axes_for_segment_array() -> None:
    stack = ImageLayout((4, 96, 112))
    assert (stack.axes(), stack.plane_axes, stack.labels_shape) == ("TYX", (0,), (4, 96, 112))
    rgb = ImageLayout((96, 112, 3), rgb=True)
    assert (rgb.axes(), rgb.plane_axes, rgb.labels_shape, rgb.channels) == ("YXS", (), (96, 112), 3)
    channels = ImageLayout((4, 2, 5, 96, 112), channel_axis=1)
    assert (channels.axes(), channels.plane_axes, channels.labels_shape) == (
        "TCZYX",
        (0, 2),
        (4, 1, 5, 96, 112),
    )
    geometry = LayerGeometry((2.0, 3.0, 1.0, 0.1, 0.1), (0.0, 1.0, 0.0, 5.0, 5.0), ("s",) + ("pixel",) * 4)
    moved = channels.labels_geometry(geometry, channel=1)
    assert moved.translate == (0.0, 4.0, 0.0, 5.0, 5.0) and moved.scale == geometry.scale


@pytest.mark.parametrize(
    ("shape", "rgb", "channel_axis", "message"),
    [
        ((64,), False, None, "has no Y and X"),
        ((64, 3), True, None, "has no Y and X"),
        ((2, 64, 64), False, 1, "cannot hold channels"),
        ((2, 64, 64, 3), True, 0, "colour samples"),
    ],
)
def test_layouts_refuse_what_cannot_be_segmented(
    shape: tuple[int, ...], rgb: bool, channel_axis: int | None, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        ImageLayout(shape, rgb, channel_axis)


def test_a_stack_is_segmented_as_segment_array_does(binary: Segmenter, cell: np.ndarray) -> None:
    steps, result = finish(
        segment_layer(binary, cell, ImageLayout(cell.shape), SegmentOptions(probabilities=True))
    )
    expected = segment_array(binary, cell, "TYX", probabilities="uint8")
    assert steps == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_array_equal(result.labels, expected.labels)
    assert expected.probabilities is not None and result.probabilities is not None
    np.testing.assert_array_equal(result.probabilities, expected.probabilities[:, 1])  # ER only
    assert result.class_names == ("background", "ER") and result.backend == "onnxruntime/CPUExecutionProvider"
    assert result.labels.any() and result.description["normalized_over"] == "frame"


def test_one_channel_of_a_multichannel_stack(binary: Segmenter, cell: np.ndarray) -> None:
    data = np.stack([cell[::-1], cell], axis=1)  # T, C, Y, X: the cell in channel 1
    layout = ImageLayout(data.shape, channel_axis=1)
    _, result = finish(segment_layer(binary, data, layout, SegmentOptions(channel=1, probabilities=True)))
    expected = segment_array(binary, cell, "TYX", probabilities="uint8")
    assert result.labels.shape == (3, 1, 96, 112) and result.probabilities.shape == (3, 1, 96, 112)
    np.testing.assert_array_equal(result.labels[:, 0], expected.labels)
    np.testing.assert_array_equal(result.probabilities[:, 0], expected.probabilities[:, 1])
    assert result.description["channel"] == 1


@pytest.mark.parametrize("normalize", ["frame", "stack"])
def test_the_current_plane_is_that_plane_of_the_whole_stack(
    binary: Segmenter, cell: np.ndarray, normalize: str
) -> None:
    layout = ImageLayout(cell.shape)
    _, whole = finish(segment_layer(binary, cell, layout, SegmentOptions(normalize=normalize)))  # type: ignore[arg-type]
    steps, plane = finish(
        segment_layer(binary, cell, layout, SegmentOptions(plane=(1,), normalize=normalize))
    )  # type: ignore[arg-type]
    assert steps == [(1, 1)] and plane.labels.shape == cell.shape
    np.testing.assert_array_equal(plane.labels[1], whole.labels[1])
    assert not plane.labels[[0, 2]].any() and plane.description["plane"] == [1]
    with pytest.raises(InputError, match="not one of the planes"):
        finish(segment_layer(binary, cell, layout, SegmentOptions(plane=(3,))))


def test_four_classes_give_a_probability_per_foreground_class(
    four_class: Segmenter, cell: np.ndarray
) -> None:
    _, result = finish(
        segment_layer(four_class, cell, ImageLayout(cell.shape), SegmentOptions(probabilities=True))
    )
    assert result.class_names == ("background", "tubule", "sheet", "SBT")
    assert result.probabilities.shape == (3, *cell.shape) and result.probabilities.dtype == np.uint8
    geometry = LayerGeometry((2.0, 0.05, 0.05), (0.0, 1.0, 2.0), ("second", "micrometer", "micrometer"))
    data, kwargs, kind = probabilities_layer(result, "cell probabilities", geometry, "cell")
    assert kind == "image" and data is result.probabilities
    assert kwargs["scale"] == (1.0, 2.0, 0.05, 0.05) and kwargs["translate"] == (0.0, 0.0, 1.0, 2.0)
    assert kwargs["units"] == ("pixel", "second", "micrometer", "micrometer")
    assert kwargs["metadata"]["ernet"]["classes"] == ["tubule", "sheet", "SBT"]


def test_labels_layer_data_carry_geometry_colours_and_provenance(binary: Segmenter, cell: np.ndarray) -> None:
    _, result = finish(segment_layer(binary, cell, ImageLayout(cell.shape), SegmentOptions()))
    geometry = LayerGeometry((2.0, 0.05, 0.05), (0.0, 1.0, 2.0), ("second", "micrometer", "micrometer"))
    data, kwargs, kind = labels_layer(result, "cell labels", geometry, "cell")
    assert kind == "labels" and data is result.labels and kwargs["name"] == "cell labels"
    assert (kwargs["scale"], kwargs["translate"], kwargs["units"]) == (
        geometry.scale,
        geometry.translate,
        geometry.units,
    )
    assert kwargs["colormap"][1] == [c / 255 for c in label_rgba(1)] and kwargs["colormap"][0][3] == 0
    made = kwargs["metadata"]["ernet"]
    assert made["source"] == "cell" and made["class_names"] == ["background", "ER"]
    assert made["backend"] == "onnxruntime/CPUExecutionProvider" and made["model"].endswith("default.onnx")
    assert probabilities_layer(result, "p", geometry, "cell") is None


def test_segmenters_are_kept_while_the_spec_is_the_same() -> None:
    cache = SegmenterCache()
    first = cache.get(RunSpec("default", "cpu"))
    assert cache.get(RunSpec("default", "cpu")) is first
    other = cache.get(RunSpec("default", "cpu", tile=128))
    assert other is not first and other.tile == 128
    cache.close()


def test_closing_a_job_stops_it(binary: Segmenter, cell: np.ndarray) -> None:
    job = segment_layer(binary, cell, ImageLayout(cell.shape), SegmentOptions())
    assert next(job) == (1, 3)
    job.close()
    with pytest.raises(StopIteration):
        next(job)


def test_measurements_are_ernet_analyze_s(tmp_path: Path) -> None:
    frames = [f.mask for f in _truth(3)]
    labels = np.stack(frames)[:, None]  # T, one channel, Y, X: as Segment ER gives a channel
    options = AnalysisOptions(pixel_size=0.05)
    steps, measured = finish(measure_labels(labels, options=options, axis_names=["t", "c"], skeleton=True))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    for i, (row, frame) in enumerate(zip(measured.rows, frames, strict=True)):
        analysis = analyze_frame(frame, options=options)
        assert_same_row(row, {"frame": i, "t": i, "c": 0, **analysis.metrics})
        np.testing.assert_array_equal(measured.skeleton[i, 0], analysis.skeleton)
    assert measured.units == metric_units(0.05) and row["nodes"] > 10
    _, one = finish(measure_labels(labels, options=options, plane=(2, 0)))
    metrics = {k: v for k, v in measured.rows[2].items() if k not in ("frame", "t", "c")}
    assert len(one.rows) == 1 and one.skeleton is None
    assert_same_row(one.rows[0], {"frame": 2, "axis 0": 2, "axis 1": 0, **metrics})
    measured.save_csv(tmp_path / "m.csv")
    with (tmp_path / "m.csv").open() as f:
        table = list(csv.reader(f))
    assert table[0][:4] == ["frame", "t", "c", "er_area_fraction"] and "total_length [um]" in table[0]
    assert len(table) == 4 and table[3][0] == "2"


def test_measuring_refuses_what_is_not_labels() -> None:
    with pytest.raises(InputError, match="integer class ids"):
        finish(measure_labels(np.zeros((32, 32), np.float32), name="probabilities"))
    intensities = np.arange(32 * 32, dtype=np.uint16).reshape(32, 32)
    with pytest.raises(InputError, match="cells: frame 0 holds 1024 distinct values"):
        finish(measure_labels(intensities, name="cells"))


def test_what_a_labels_layer_says_of_itself() -> None:
    assert label_classes({}) == (("background", "ER"), None)
    made = {"ernet": {"class_names": ["background", "tubule", "sheet", "SBT"], "network_classes": [1, 3]}}
    assert label_classes(made) == (("background", "tubule", "sheet", "SBT"), (1, 3))
    assert (
        pixel_size_of(LayerGeometry((1.0, 0.04, 0.04), (0.0,) * 3, ("s", "micrometer", "micrometer"))) == 0.04
    )
    assert pixel_size_of(PIXELS) is None
    skeleton = np.zeros((4, 4), np.uint8)
    from ernet.runtime.napari_plugin.measure import NetworkMeasurement

    data, kwargs, kind = skeleton_layer(NetworkMeasurement([], {}, None, skeleton), "s", PIXELS, "m")
    assert kind == "labels" and data is skeleton and kwargs["metadata"] == {"ernet": {"source": "m"}}


def test_the_sample_is_a_synthetic_time_lapse_and_its_truth() -> None:
    (image, image_kwargs, image_kind), (truth, truth_kwargs, truth_kind) = synthetic_timelapse()
    assert (image_kind, truth_kind) == ("image", "labels")
    assert image.shape == truth.shape == (SAMPLE_FRAMES, SAMPLE_SIDE, SAMPLE_SIDE)
    assert image.dtype == np.uint8 and set(np.unique(truth)) == {0, 1}
    assert image_kwargs["name"] == "synthetic ER" and truth_kwargs["name"] == "synthetic ER truth"


def test_the_plain_modules_need_neither_napari_nor_qt_nor_torch(tmp_path: Path) -> None:
    modules = ("segment", "measure", "sample")
    code = (
        "import sys\n"
        + "".join(f"import ernet.runtime.napari_plugin.{m}\n" for m in modules)
        + "from ernet.runtime.napari_plugin.sample import synthetic_timelapse; synthetic_timelapse()\n"
        + "print(sorted(m for m in ('napari', 'magicgui', 'qtpy', 'PyQt6', 'torch') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert done.stdout.strip() == "[]"


def _truth(n: int) -> list[Any]:
    from ernet.training.synthetic import SyntheticConfig, generate_stack

    return generate_stack(n, 2, SyntheticConfig(height=128, width=128))


def test_npe2_validates_the_installed_manifest() -> None:
    pytest.importorskip("npe2")
    done = run_cli("npe2", "validate", "ernet")
    assert done.returncode == 0 and "valid" in done.stdout, done.stdout + done.stderr
