"""Acceptance 1: simulate -> train a few steps -> export -> ernet-infer on a stack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

pytest.importorskip("torch")
pytest.importorskip("onnx")

from ernet.runtime import Segmenter  # noqa: E402

from conftest import run_cli  # noqa: E402


def test_train_export_infer(tmp_path: Path) -> None:
    data, stacks, out = tmp_path / "data", tmp_path / "stacks", tmp_path / "masks"
    done = run_cli("ernet-simulate", data, "--count", "4", "--size", "80x96", "--seed", "1")
    assert done.returncode == 0, done.stderr
    done = run_cli(
        "ernet-train",
        data,
        "-o",
        tmp_path / "run",
        "--epochs",
        "2",
        "--steps-per-epoch",
        "2",
        "--crop",
        "48",
        "--features",
        "8",
        "--groups",
        "1",
        "--blocks",
        "2",
        "--reduction",
        "4",
        "--val-fraction",
        "0.25",
        "--device",
        "cpu",
    )
    assert done.returncode == 0, done.stderr
    assert "best frame-mean validation foreground IoU" in done.stdout
    model = tmp_path / "model.onnx"
    # Four optimiser steps leave ER logits close to ties, which int8 flips: its gate refuses
    # such a model (per-class agreement), rightly; int8 is checked on the default model.
    done = run_cli("ernet-export", tmp_path / "run" / "best.pt", "-o", model, "--variants", "fp16")
    assert done.returncode == 0, done.stderr
    done = run_cli(
        "ernet-simulate", stacks, "--count", "1", "--frames", "6", "--size", "130x70", "--bit-depth", "16"
    )
    assert done.returncode == 0, done.stderr
    stack = stacks / "synthetic_0000_image.tif"

    done = run_cli(
        "ernet-infer",
        stack,
        "--model",
        model,
        "--out",
        out,
        "--provider",
        "cpu",
        "--tile",
        "48",
        "--overlap",
        "12",
        "--batch",
        "3",
    )
    assert done.returncode == 0, done.stderr
    assert "onnxruntime/CPUExecutionProvider" in done.stderr  # the provider that ran is printed
    assert "6 frames" in done.stdout and "MPix/s" in done.stdout

    with tifffile.TiffFile(out / "synthetic_0000_image_mask.tif") as tif:
        series = tif.series[0]
        assert series.axes == "TYX" and series.shape == (6, 130, 70) and series.dtype == np.uint8
        mask = series.asarray()
    assert set(np.unique(mask)) <= {0, 1}
    # the CLI result is the API result, frame by frame
    seg = Segmenter(model, provider="cpu", tile=48, overlap=12, batch=3)
    frames = tifffile.imread(stack)
    np.testing.assert_array_equal(mask, np.stack(list(seg.segment_frames(frames))))


def test_whole_frame_in_one_tile_equals_untiled_inference(tiny_onnx: Path) -> None:
    seg = Segmenter(tiny_onnx, provider="cpu")
    assert seg.tile == 64 and seg.overlap == 16  # the model's training crop, a quarter overlap
    frame = np.random.default_rng(0).integers(0, 4000, (64, 64), dtype=np.uint16)
    untiled = seg.run_model(seg.normalization.apply(frame)[None, None])[0]
    np.testing.assert_array_equal(seg.logits(frame), untiled)
    np.testing.assert_array_equal(seg.segment(frame), untiled.argmax(0).astype(np.uint8))
    probabilities = seg.probabilities(frame)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(0), untiled.argmax(0))
    scaled = seg.probabilities(frame, dtype="uint8")
    assert scaled.dtype == np.uint8 and np.abs(scaled / 255 - probabilities).max() <= 0.5 / 255 + 1e-6


def test_segmenter_rejects_frames_that_do_not_fit_the_model(tiny_onnx: Path) -> None:
    from ernet.runtime.errors import InputError

    seg = Segmenter(tiny_onnx, provider="cpu")
    with pytest.raises(InputError, match="1-channel model"):
        seg.segment(np.zeros((2, 3, 16, 16)))
    with pytest.raises(ValueError, match="overlap"):
        Segmenter(tiny_onnx, provider="cpu", tile=32, overlap=32)


def test_large_frame_is_tiled_close_to_whole_frame(tiny_onnx: Path) -> None:
    """Channel attention pools globally, so tiling is not exact; it must stay close."""
    seg = Segmenter(tiny_onnx, provider="cpu", tile=64, overlap=16)
    frame = np.random.default_rng(2).integers(0, 255, (150, 170), dtype=np.uint8)
    whole = seg.run_model(seg.normalization.apply(frame)[None, None])[0].argmax(0)
    assert (seg.segment(frame) == whole).mean() > 0.9


def test_float_input_through_the_cli(tiny_onnx: Path, tmp_path: Path) -> None:
    frame = np.random.default_rng(3).normal(100.0, 20.0, (2, 70, 90)).astype(np.float32)
    tifffile.imwrite(tmp_path / "float.tif", frame, imagej=True, metadata={"axes": "ZYX"})
    done = run_cli("ernet-infer", tmp_path / "float.tif", "--model", tiny_onnx, "--provider", "cpu", "-q")
    assert done.returncode == 0, done.stderr
    with tifffile.TiffFile(tmp_path / "float_mask.tif") as tif:
        assert tif.series[0].axes == "ZYX" and tif.series[0].shape == (2, 70, 90)
        np.testing.assert_array_equal(
            tif.series[0].asarray(),
            np.stack([Segmenter(tiny_onnx, provider="cpu").segment(f) for f in frame]),
        )
