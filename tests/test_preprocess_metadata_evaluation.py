"""Normalisation and the model description that carries it."""

from __future__ import annotations

import numpy as np
import pytest

from ernet.runtime.metadata import ModelConfig, ModelMetadata
from ernet.runtime.preprocess import Normalization


def test_original_scaling_is_value_over_255() -> None:
    frame = np.array([[0, 51, 255]], np.uint8)
    np.testing.assert_array_equal(Normalization.original().apply(frame), np.array([[0, 0.2, 1]], np.float32))


def test_percentile_maps_low_high_to_unit_range_and_clips() -> None:
    frame = np.arange(101, dtype=np.uint16).reshape(1, -1) * 600  # spans most of uint16
    out = Normalization(low=1, high=99).apply(frame)
    assert out.dtype == np.float32
    assert out.min() == 0 and out.max() == 1
    np.testing.assert_allclose(out[0, 50], 0.5, atol=1e-6)


def test_uint16_is_converted_before_arithmetic() -> None:
    # lo > some pixels: with uint16 arithmetic these would wrap to huge values
    frame = np.array([[100, 1000, 60000]], np.uint16)
    out = Normalization(clip=False).apply(frame, value_range=(1000.0, 2000.0))
    np.testing.assert_allclose(out, [[-0.9, 0.0, 59.0]], rtol=1e-6)


def test_fixed_range_is_used_when_given() -> None:
    norm = Normalization()
    stack = np.stack([np.full((4, 4), 10, np.uint8), np.full((4, 4), 200, np.uint8)])
    rng = norm.value_range(stack)
    assert norm.apply(stack[0], rng).max() == 0 and norm.apply(stack[1], rng).min() == 1


def test_constant_frame_gives_zeros() -> None:
    assert not Normalization().apply(np.full((8, 8), 7, np.uint8)).any()


@pytest.mark.parametrize("bad", [dict(mode="zscore"), dict(mode="scale", scale=0), dict(low=50, high=10)])
def test_invalid_normalisation_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        Normalization(**bad)


def test_metadata_round_trips_through_onnx_props() -> None:
    meta = ModelMetadata(
        config=ModelConfig(n_classes=3, n_feats=16),
        class_names=("bg", "tubule", "sheet"),
        normalization=Normalization.original(),
        tile_size=128,
        provenance={"training": {"epochs": 3}},
    )
    assert ModelMetadata.from_props(meta.to_props()) == meta


def test_metadata_refuses_inconsistent_or_newer_descriptions() -> None:
    with pytest.raises(ValueError, match="class names"):
        ModelMetadata(class_names=("only-one",))
    with pytest.raises(ValueError, match="newer"):
        ModelMetadata.from_dict({**ModelMetadata().to_dict(), "format_version": 99})
    with pytest.raises(KeyError):
        ModelMetadata.from_props({"other": "{}"})


def test_flops_per_pixel_of_published_model() -> None:
    # 2 x (multiply-adds of every conv per pixel): 2 x (3,944,138 params - biases - attention) roughly
    assert ModelConfig().flops_per_pixel == 2 * (
        9 * 64 + 5 * (10 * 2 * 9 * 64 * 64 + 9 * 64 * 64) + 9 * 64 * 64 + 64 * 2
    )


def test_scores_from_confusion() -> None:
    from ernet.runtime.evaluation import confusion_matrix, scores

    truth = np.array([0, 0, 1, 1, 1, 0])
    pred = np.array([0, 1, 1, 1, 0, 0])
    matrix = confusion_matrix(pred, truth, 2)
    np.testing.assert_array_equal(matrix, [[2, 1], [1, 2]])
    s = scores(matrix, ("background", "ER"))
    assert s["iou_ER"] == pytest.approx(2 / 4) and s["dice_ER"] == pytest.approx(4 / 6)
    assert s["iou_background"] == pytest.approx(2 / 4) and s["mean_iou_foreground"] == pytest.approx(0.5)
    empty = scores(confusion_matrix(np.zeros(4), np.zeros(4), 2), ("background", "ER"))
    assert np.isnan(empty["iou_ER"]) and np.isnan(empty["mean_iou_foreground"])
