"""What ernet-infer writes: masks, probabilities and overlays that keep the input's axes,
calibration and a record of how they were made; stack-wide normalisation; channels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ernet.runtime import Segmenter
from ernet.runtime.preprocess import StackRange

from conftest import run_cli


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 3000, (3, 2, 70, 90), dtype=np.uint16)
    data[1] //= 4  # a dimmer time point: per-frame and per-stack normalisation differ
    path = tmp_path / "cells.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.065, 1 / 0.065),
        metadata={"axes": "TZYX", "unit": "micron", "spacing": 0.25, "finterval": 1.5},
    )
    return path


def test_probabilities_overlay_and_metadata(stack: Path, tiny_onnx: Path) -> None:
    done = run_cli(
        "ernet-infer",
        stack,
        "--model",
        tiny_onnx,
        "--provider",
        "cpu",
        "--probabilities",
        "uint8",
        "--overlay",
    )
    assert done.returncode == 0, done.stderr
    data = tifffile.imread(stack)
    seg = Segmenter(tiny_onnx, provider="cpu")
    with tifffile.TiffFile(stack.with_name("cells_mask.tif")) as tif:
        assert tif.series[0].axes == "TZYX"
        ij = tif.imagej_metadata
        assert (ij["unit"], ij["spacing"], ij["finterval"]) == ("micron", 0.25, 1.5)
        num, den = tif.pages.first.tags["XResolution"].value
        assert num / den == pytest.approx(1 / 0.065)
        info = json.loads(ij["Info"])
        assert info["normalized_over"] == "frame" and info["normalization"]["mode"] == "percentile"
        assert info["tile"] == 90 and info["class_names"] == ["background", "ER"]  # the whole 70x90 frame
        mask = tif.series[0].asarray()
    np.testing.assert_array_equal(mask[2, 1], seg.segment(data[2, 1]))
    with tifffile.TiffFile(stack.with_name("cells_probabilities.tif")) as tif:
        assert tif.series[0].axes == "TZCYX" and tif.series[0].dtype == np.uint8
        probs = tif.series[0].asarray()
    np.testing.assert_array_equal(probs[2, 1], seg.probabilities(data[2, 1], dtype="uint8"))
    with tifffile.TiffFile(stack.with_name("cells_overlay.tif")) as tif:
        assert tif.series[0].axes == "TZYXS" and tif.series[0].shape == (3, 2, 70, 90, 3)
        rgb = tif.series[0].asarray()
    tinted = rgb[..., 0].astype(int) - rgb[..., 1]  # magenta over grey: red exceeds green
    np.testing.assert_array_equal(tinted > 0, mask == 1)


def test_float16_probabilities_are_a_plain_tiff(stack: Path, tiny_onnx: Path) -> None:
    done = run_cli("ernet-infer", stack, "--model", tiny_onnx, "--probabilities", "float16", "-q")
    assert done.returncode == 0, done.stderr
    with tifffile.TiffFile(stack.with_name("cells_probabilities.tif")) as tif:
        assert tif.series[0].axes == "TZCYX" and tif.series[0].dtype == np.float16
        probs = tif.series[0].asarray().astype(np.float32)
    np.testing.assert_allclose(probs.sum(axis=2), 1, atol=2e-3)


def test_stack_normalisation(stack: Path, tiny_onnx: Path) -> None:
    done = run_cli("ernet-infer", stack, "--model", tiny_onnx, "--normalize", "stack", "-q")
    assert done.returncode == 0, done.stderr
    data = tifffile.imread(stack)
    seg = Segmenter(tiny_onnx, provider="cpu")
    gathered = StackRange(seg.normalization)
    for frame in data.reshape(-1, 70, 90):
        gathered.add(frame)
    value_range = gathered.value_range()
    assert value_range == pytest.approx(seg.normalization.value_range(data))
    with tifffile.TiffFile(stack.with_name("cells_mask.tif")) as tif:
        mask = tif.series[0].asarray()
        info = json.loads(tif.imagej_metadata["Info"])
    assert info["normalized_over"] == "stack" and info["value_range"] == pytest.approx(list(value_range))
    np.testing.assert_array_equal(mask[1, 0], seg.segment(data[1, 0], value_range))
    assert not np.array_equal(mask[1, 0], seg.segment(data[1, 0]))  # the option changes something


def test_channel_option_picks_the_er_channel(tmp_path: Path, tiny_onnx: Path) -> None:
    data = np.random.default_rng(1).integers(0, 255, (2, 3, 40, 50), dtype=np.uint8)
    path = tmp_path / "multi.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZCYX"})
    done = run_cli("ernet-infer", path, "--model", tiny_onnx, "--channel", "2", "-q")
    assert done.returncode == 0, done.stderr
    with tifffile.TiffFile(tmp_path / "multi_mask.tif") as tif:
        assert tif.series[0].axes == "ZYX"
        mask = tif.series[0].asarray()
    seg = Segmenter(tiny_onnx, provider="cpu")
    np.testing.assert_array_equal(mask[1], seg.segment(data[1, 2]))


@pytest.mark.parametrize("metrics", [False, True])
def test_summary_separates_model_throughput_from_analysis(
    metrics: bool, stack: Path, tiny_onnx: Path
) -> None:
    import re

    args = ["--metrics"] if metrics else []
    done = run_cli("ernet-infer", stack, "--model", tiny_onnx, "--provider", "cpu", "-q", *args)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    found = re.fullmatch(
        r"6 frames, 0\.04 MPix: segmentation (\S+) s, (\S+) frames/s, \S+ MPix/s on "
        r"onnxruntime/CPUExecutionProvider(?:; network analysis (\S+) s)?; total (\S+) s",
        line,
    )
    assert found, line
    segmentation, _, analysis, total = found.groups()
    assert (analysis is not None) == metrics
    assert float(segmentation) + float(analysis or 0) <= float(total) + 0.01


def test_frames_too_large_for_the_memory_available_are_refused_before_reading(
    tiny_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ernet.runtime import pipeline
    from ernet.runtime.errors import InputError
    from ernet.runtime.io import open_image

    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.zeros((2, 600, 800), np.uint16), imagej=True, metadata={"axes": "TYX"})
    seg = Segmenter(tiny_onnx, provider="cpu")
    need = seg.frame_bytes(600, 800)
    monkeypatch.setattr(pipeline, "available_memory", lambda: need - 1)
    outputs = pipeline.Outputs(tmp_path / "big_mask.tif")
    with pytest.raises(InputError, match=r"big.tif: a 600x800 frame needs about .* GiB to segment"):
        pipeline.segment_image(seg, open_image(path), outputs)
    assert not outputs.mask.exists()
    pipeline.segment_image(seg, open_image(path), outputs, check_memory=False)  # asked to try anyway
    assert tifffile.imread(outputs.mask).shape == (2, 600, 800)


def test_the_memory_estimate_covers_the_runtime_s_own_buffers(tiny_onnx: Path) -> None:
    import tracemalloc  # sees numpy's allocations, not ONNX Runtime's

    seg = Segmenter(tiny_onnx, provider="cpu")
    frame = np.random.default_rng(0).integers(0, 4000, (600, 800), np.uint16)
    tracemalloc.start()
    try:
        seg.predict(frame, probabilities="float16")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= seg.frame_bytes(600, 800, "float16")


def test_a_cgroup_limit_bounds_the_memory_available(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ernet.runtime import resources

    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text("1073741824\n")
    usage.write_text("268435456\n")
    monkeypatch.setattr(resources, "CGROUP_LIMITS", ((limit, usage),))
    assert resources.available_memory() == 3 << 28  # 1 GiB limit less 256 MiB used, below MemAvailable
    limit.write_text("max\n")
    assert resources.available_memory() == resources._meminfo_available()


def test_small_pieces_are_dropped_from_masks_and_overlays_not_probabilities(
    stack: Path, tiny_onnx: Path, tmp_path: Path
) -> None:
    from ernet.runtime.postprocess import without_small_pieces

    labels = np.zeros((20, 20), np.uint8)
    labels[2:10, 2:10] = 1  # 64 px
    labels[15:17, 15:17] = 2  # 4 px
    labels[12, 3] = 1  # 1 px, diagonal neighbours count as connected: alone here
    kept = without_small_pieces(labels, 5)
    assert kept.sum() == 64 and kept[15, 15] == 0 and kept[12, 3] == 0
    assert without_small_pieces(labels, 0) is labels
    out = {}
    for size in ("0", "50", "100000"):
        done = run_cli(
            "ernet-infer", stack, "--model", tiny_onnx, "--provider", "cpu", "-q", "-o", tmp_path / size,
            "--min-object-size", size, "--probabilities", "uint8",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        out[size] = (
            tifffile.imread(tmp_path / size / "cells_mask.tif"),
            tifffile.imread(tmp_path / size / "cells_probabilities.tif"),
        )
    (mask, probabilities), (filtered, same_probabilities) = out["0"], out["50"]
    assert np.array_equal(probabilities, same_probabilities)
    frames, kept_frames = mask.reshape(-1, *mask.shape[-2:]), filtered.reshape(-1, *mask.shape[-2:])
    for frame, kept_frame in zip(frames, kept_frames, strict=True):
        assert np.array_equal(without_small_pieces(frame, 50), kept_frame)
    assert not out["100000"][0].any()  # larger than any piece: all background


def test_the_model_s_minimum_object_size_is_the_default(
    stack: Path, tiny_checkpoint: Path, tiny_onnx: Path, tmp_path: Path
) -> None:
    from ernet.export.exporter import export_checkpoint
    from ernet.runtime.backends import read_onnx_metadata
    from ernet.runtime.postprocess import without_small_pieces

    SIZE = 100_000  # noqa: N806
    recorded = tmp_path / "speckle.onnx"
    export_checkpoint(tiny_checkpoint, recorded, min_object_size=SIZE)
    assert read_onnx_metadata(recorded).contract.min_object_size == SIZE
    assert read_onnx_metadata(tiny_onnx).contract.min_object_size == 0  # nothing recorded: keep all
    assert Segmenter(recorded, provider="cpu").min_object_size == SIZE
    assert Segmenter(recorded, provider="cpu", min_object_size=0).min_object_size == 0
    masks = {}
    for name, model, flags in (
        ("raw", tiny_onnx, []),
        ("default", recorded, []),
        ("kept", recorded, ["--min-object-size", "0"]),
    ):
        done = run_cli(
            "ernet-infer", stack, "--model", model, "--provider", "cpu", "-q", "-o", tmp_path / name, *flags
        )
        assert done.returncode == 0, done.stderr
        masks[name] = tifffile.imread(tmp_path / name / "cells_mask.tif")
    raw = masks["raw"].reshape(-1, *masks["raw"].shape[-2:])
    expected = np.stack([without_small_pieces(frame, SIZE) for frame in raw]).reshape(masks["raw"].shape)
    assert masks["raw"].any() and not expected.any()  # larger than any piece: all dropped
    assert np.array_equal(masks["default"], expected)
    assert np.array_equal(masks["kept"], masks["raw"])
    with tifffile.TiffFile(tmp_path / "default" / "cells_mask.tif") as tif:
        assert json.loads(tif.imagej_metadata["Info"])["min_object_size"] == SIZE
