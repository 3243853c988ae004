"""ERnet-v2's residual Swin network: the released layout, its logits, its recognition
and its preprocessing, against ERnet-v2's own outputs (../shared/ernet-v2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ernet.runtime.errors import ModelError  # noqa: E402
from ernet.training.checkpoint import load_checkpoint  # noqa: E402
from ernet.training.models.swin import (  # noqa: E402
    ERNET_V2_NORMALIZATION,
    FOUR_CLASSES,
    PUBLISHED_CHANNEL_OF_CLASS,
    ResidualSwin,
    SwinConfig,
    infer_config,
)

CHECKPOINT = "example_swinir_nch1.pth"


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def test_released_configuration_has_the_released_state_dict() -> None:
    state = ResidualSwin(SwinConfig(), 1, 4).state_dict()
    floats = [v for v in state.values() if v.dtype == torch.float32]
    indices = [k for k, v in state.items() if v.dtype == torch.int64]
    assert len(state) == 188 and len(floats) == 176 and len(indices) == 12
    assert sum(v.numel() for v in floats) == 588_334
    assert all(k.endswith("attn.relative_position_index") for k in indices)
    assert state[indices[0]].tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]


@pytest.mark.parametrize("layout", ["container", "bare", "dataparallel"])
def test_released_checkpoint_reproduces_ernet_v2_logits(ernet_v2: Path, layout: str, tmp_path: Path) -> None:
    path = ernet_v2 / CHECKPOINT
    if layout != "container":
        state = torch.load(path, weights_only=True)["state_dict"]
        if layout == "dataparallel":
            state = {f"module.{k}": v for k, v in state.items()}
        path = tmp_path / "weights.bin"  # recognised from its keys, not its name
        torch.save(state, path)
    loaded = load_checkpoint(path)
    assert loaded.metadata.architecture.name == "ERnetV2-Swin"
    assert loaded.metadata.architecture.config["depths"] == [6, 6]
    contract = loaded.metadata.contract
    assert contract.class_names == FOUR_CLASSES == ("background", "tubule", "sheet", "SBT")
    assert contract.network_classes == (1,)
    assert contract.normalization == ERNET_V2_NORMALIZATION
    assert contract.tiles.multiple_of == 2
    reference = np.load(ernet_v2 / "example_ref.npz")
    for image, logits in (("input", "logits"), ("input2", "logits2")):
        with torch.no_grad():
            ours = loaded.model(torch.from_numpy(reference[image])).numpy()
        # Output channel k is class k: the released channels (bg, SBT, tubule, sheet) reordered.
        theirs = reference[logits][:, list(PUBLISHED_CHANNEL_OF_CLASS)]
        assert ours.shape == theirs.shape
        assert np.abs(softmax(ours) - softmax(theirs)).max() < 1e-3
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_published_channel_order_maps_to_class_ids() -> None:
    # ERnet-v2: channel 0 background, 1 SBT, 2 tubule, 3 sheet; ours: 0 bg, 1 tubule, 2 sheet, 3 SBT.
    published = ("background", "SBT", "tubule", "sheet")
    assert tuple(published[c] for c in PUBLISHED_CHANNEL_OF_CLASS) == FOUR_CLASSES


def test_ernet_v2_preprocessing_is_reproduced_bit_for_bit(ernet_v2: Path) -> None:
    reference = np.load(ernet_v2 / "example_ref_labels.npz")
    ours = ERNET_V2_NORMALIZATION.apply(reference["image"])
    np.testing.assert_array_equal(ours, reference["net_input"][0, 0])
    assert np.array_equal(np.round(ours * 255) / 255, ours)  # 8-bit levels, truncated


def test_configuration_is_read_from_the_keys() -> None:
    config = SwinConfig(embed_dim=16, depths=(1, 3, 2), num_heads=4, window=4, mlp_ratio=3.0)
    state = ResidualSwin(config, 2, 5).state_dict()
    found, channels, classes = infer_config(state)
    assert (found, channels, classes) == (config, 2, 5)


def test_a_damaged_or_foreign_state_dict_is_refused_naming_the_keys(ernet_v2: Path, tmp_path: Path) -> None:
    state = torch.load(ernet_v2 / CHECKPOINT, weights_only=True)["state_dict"]
    del state["layers.1.residual_group.blocks.5.mlp.fc2.bias"]
    state["layers.1.extra.weight"] = torch.zeros(1)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "damaged.pth")
    with pytest.raises(ModelError) as error:
        load_checkpoint(tmp_path / "damaged.pth")
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'damaged.pth'}: not a checkpoint of a known architecture")
    missing = "missing layers.1.residual_group.blocks.5.mlp.fc2.bias"
    assert f"ERnetV2-Swin: residual Swin keys do not match: {missing}" in message
    assert "unexpected layers.1.extra.weight" in message
    assert "ERNet-RCAN: not an ERNet state dict" in message

    five = ResidualSwin(SwinConfig(embed_dim=8, depths=(1,), num_heads=2), 1, 5).state_dict()
    torch.save(five, tmp_path / "five.pth")
    with pytest.raises(ModelError, match="a published ERnet-v2 model has 4 output channels, this one 5"):
        load_checkpoint(tmp_path / "five.pth")
