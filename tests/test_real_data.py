"""Loaders on the real, hand-labelled frames (read from ../shared; skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ernet.runtime.io import open_image


def test_real_frames_and_labels_load(real_data: Path) -> None:
    images = sorted(real_data.glob("*_image.tif"))
    assert len(images) == 4
    for path in images:
        image = open_image(path)
        mask = open_image(path.with_name(path.name.replace("_image", "_mask")))
        assert image.axes == "YX" and image.data.dtype == np.uint8
        assert 1000 <= image.data.shape[0] <= 1100 and 1300 <= image.data.shape[1] <= 1400
        assert mask.data.shape == image.data.shape
        assert set(np.unique(mask.data)) <= {0, 1} and 0.01 < mask.data.mean() < 0.6


def test_real_folder_is_a_training_source(real_data: Path) -> None:
    pytest.importorskip("torch")
    from ernet.runtime.preprocess import Normalization
    from ernet.training.data import load_samples

    samples = load_samples(real_data, Normalization())
    assert [s.name for s in samples] == ["stack1_t000", "stack1_t126", "stack2_t000", "stack2_t126"]
    assert all(s.image.dtype == np.float32 and s.image.shape[0] == 1 for s in samples)


def test_real_frame_segments_at_full_size(real_data: Path, tiny_onnx: Path) -> None:
    from ernet.runtime import Segmenter

    frame = open_image(real_data / "stack2_t000_image.tif").data
    mask = Segmenter(tiny_onnx, provider="cpu", batch=8).segment(frame)
    assert mask.shape == frame.shape and mask.dtype == np.uint8
