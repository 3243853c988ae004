"""Normalisation, the model contract and the description that carries it, and scores."""

from __future__ import annotations

import numpy as np
import pytest

from ernet.runtime import ArchitectureSpec, ModelContract, ModelMetadata, TileSpec
from ernet.runtime.metadata import FORMAT_VERSION
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
        contract=ModelContract(
            class_names=("bg", "tubule", "sheet"),
            network_classes=(1,),
            normalization=Normalization.original(),
            tiles=TileSpec(128, multiple_of=8, overlap=0.5),
        ),
        architecture=ArchitectureSpec("Some-Swin", {"depths": [6, 6], "window": 8}),
        provenance={"training": {"epochs": 3}},
    )
    assert ModelMetadata.from_props(meta.to_props()) == meta


def test_metadata_refuses_inconsistent_or_newer_descriptions() -> None:
    with pytest.raises(ValueError, match="class names"):
        ModelContract(class_names=("only-one",))
    with pytest.raises(ValueError, match="network classes"):
        ModelContract(network_classes=(0,))
    with pytest.raises(ValueError, match="not a multiple of 32"):
        TileSpec(100, multiple_of=32)
    with pytest.raises(ValueError, match="newer"):
        ModelMetadata.from_dict({**ModelMetadata().to_dict(), "format_version": 99})
    with pytest.raises(KeyError):
        ModelMetadata.from_props({"other": "{}"})


def test_format_1_descriptions_still_load() -> None:
    """Every artefact exported before the contract was split from the architecture."""
    old = {
        "format_version": 1,
        "architecture": "ERNet-RCAN",
        "config": {
            "in_channels": 1,
            "n_classes": 3,
            "n_feats": 16,
            "n_resgroups": 2,
            "n_resblocks": 2,
            "reduction": 4,
        },
        "class_names": ["background", "tubule", "sheet"],
        "normalization": {"mode": "scale", "scale": 255.0, "low": 1.0, "high": 99.0, "clip": False},
        "tile_size": 128,
        "precision": "fp16",
        "source_checkpoint_sha256": "ab" * 32,
        "package_version": "0.1.0",
        "provenance": {"epoch": 3},
    }
    meta = ModelMetadata.from_dict(old)
    assert meta.contract == ModelContract(
        class_names=("background", "tubule", "sheet"),
        normalization=Normalization.original(),
        tiles=TileSpec(128),
    )
    assert meta.architecture == ArchitectureSpec(
        "ERNet-RCAN", {"n_feats": 16, "n_resgroups": 2, "n_resblocks": 2, "reduction": 4}
    )
    assert meta.precision == "fp16" and meta.source_checkpoint_sha256 == "ab" * 32
    assert meta.provenance == {"epoch": 3}
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        ModelMetadata.from_dict({**old, "class_names": ["a", "b"]})


def test_the_embedded_default_model_carries_a_current_description() -> None:
    import json

    from ernet.runtime import DEFAULT_MODEL
    from ernet.runtime.backends import read_onnx_metadata

    raw = DEFAULT_MODEL.read_bytes()
    assert f'"format_version": {FORMAT_VERSION}'.encode() in raw
    meta = read_onnx_metadata(DEFAULT_MODEL)
    assert meta.architecture.name == "ERNet-RCAN" and meta.architecture.config["n_feats"] == 16
    assert meta.contract.tiles.size == 256 and meta.contract.class_names == ("background", "ER")
    assert json.loads(meta.to_json())["format_version"] == FORMAT_VERSION


def test_flops_per_pixel_of_published_model() -> None:
    pytest.importorskip("torch")
    from ernet.training.models import get_architecture
    from ernet.training.models.ernet import ERNetConfig

    # 2 x (multiply-adds of every conv per pixel): 2 x (3,944,138 params - biases - attention) roughly
    published = 2 * (9 * 64 + 5 * (10 * 2 * 9 * 64 * 64 + 9 * 64 * 64) + 9 * 64 * 64 + 64 * 2)
    assert ERNetConfig().flops_per_pixel == published
    ernet = get_architecture("ERNet-RCAN")  # the registry's FLOP counter is the architecture's
    assert ernet.flops_per_pixel(ernet.complete(ArchitectureSpec()), ModelContract()) == published


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


@pytest.mark.parametrize(("scale", "dtype"), [(3e38, np.float32), (-3e38, np.float32), (1e300, np.float64)])
def test_values_near_the_float_limits_normalise_like_any_others(scale: float, dtype: type) -> None:
    """Percentile normalisation is scale-free: data near float32's limits (or float64
    far beyond them) give the frame they would at ordinary magnitudes, with no overflow."""
    import warnings

    frame = np.random.default_rng(0).random((64, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow would warn
        huge = Normalization().apply((frame * scale).astype(dtype))
    expected = Normalization().apply(frame if scale > 0 else -frame)
    np.testing.assert_allclose(huge, expected, atol=1e-5)
    assert huge.dtype == np.float32


def test_noise_level_is_the_noise_not_the_structure() -> None:
    from ernet.runtime.preprocess import noise_level

    rng = np.random.default_rng(3)
    noise = rng.normal(0, 20, (256, 256))
    assert noise_level(1000 + noise) == pytest.approx(20, rel=0.05)
    structured = 1000 + noise
    structured[:, 100:110] += 3000  # a bright tubule: a few large differences, ignored
    assert noise_level(structured) == pytest.approx(20, rel=0.05)
    assert noise_level(np.zeros(10)) == 0.0


def test_a_noise_floor_keeps_noise_from_becoming_contrast() -> None:
    from ernet.runtime.preprocess import stack_range

    rng = np.random.default_rng(4)
    noise = rng.poisson(100, (128, 128)).astype(np.uint16)
    plain, floored = Normalization(), Normalization(noise_floor=30)
    lo, hi = floored.value_range(noise)
    assert (lo, hi) != plain.value_range(noise) and hi - lo > 25 * 10  # about 30 sigma of 10 counts
    assert floored.apply(noise).max() < 0.25  # dim, not stretched to [0, 1]
    signal = noise.copy()
    signal[40:60] += 5000  # a structure far above the noise: the floor does not bind
    assert floored.value_range(signal) == plain.value_range(signal)
    stack_lo, stack_hi = stack_range(floored, [noise, noise])  # floored by the frames' noise too
    assert stack_hi - stack_lo == pytest.approx(hi - lo, rel=0.01)
    with pytest.raises(ValueError, match="noise floor"):
        Normalization(mode="scale", noise_floor=30)
    assert Normalization.from_dict({"mode": "percentile", "low": 1.0, "high": 99.0}).noise_floor == 0.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_stack_ranges_gathered_apart_merge_to_one_pass(dtype: type) -> None:
    """What cluster workers gather on groups of frames merges to the one-pass range, bit for bit."""
    from ernet.runtime.preprocess import StackRange, stack_range

    rng = np.random.default_rng(5)
    top = 200 if dtype == np.uint8 else 4000
    frames = [rng.integers(0, top // (i + 1), (32, 48)).astype(dtype) for i in range(7)]
    norm = Normalization(noise_floor=5)
    parts = []
    for group in (frames[:3], frames[3:4], frames[4:]):
        part = StackRange(norm)
        for frame in group:
            part.add(frame)
        parts.append(part)
    merged = parts[2].merge(parts[0]).merge(parts[1])  # in any order
    assert merged.value_range() == stack_range(norm, frames)
