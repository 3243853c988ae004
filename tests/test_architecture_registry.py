"""A second architecture is one module plus its registry entry: a stub two-layer conv net,
defined here and nowhere else, trains a step, exports with parity, is recognised from a
bare state dict, and runs through ernet-infer (which knows nothing of it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from torch import nn  # noqa: E402

from ernet.runtime import ArchitectureSpec, ModelContract, Segmenter, TileSpec  # noqa: E402
from ernet.runtime.preprocess import Normalization  # noqa: E402
from ernet.training.models import Architecture, Fp16Policy, get_architecture, register  # noqa: E402

from conftest import run_cli  # noqa: E402

NAME = "TwoLayerConv-test"


class TwoLayerConv(nn.Module):
    """3x3 conv to ``hidden`` channels, ReLU, 1x1 conv to class logits."""

    def __init__(self, channels: int, classes: int, hidden: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(channels, hidden, 3, padding=1)
        self.second = nn.Conv2d(hidden, classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(image)))


def _recognise(state: Mapping[str, torch.Tensor]) -> tuple[ArchitectureSpec, ModelContract]:
    if set(state) != {"first.weight", "first.bias", "second.weight", "second.bias"}:
        raise ValueError("not a two-layer conv net")
    hidden, channels = state["first.weight"].shape[:2]
    classes = state["second.weight"].shape[0]
    names = ("background", *(f"c{i}" for i in range(1, classes)))
    contract = ModelContract(
        int(channels), names, normalization=Normalization.original(), tiles=TileSpec(64, 4)
    )
    return ArchitectureSpec(NAME, {"hidden": int(hidden)}), contract


STUB = Architecture(
    name=NAME,
    defaults={"hidden": 4},
    build=lambda spec, c: TwoLayerConv(c.in_channels, c.n_classes, spec.config["hidden"]),
    recognise=_recognise,
    flops_per_pixel=lambda spec, c: 2 * spec.config["hidden"] * (9 * c.in_channels + c.n_classes),
    fp16=Fp16Policy(frozenset({"Conv", "Relu"})),
    tile_multiple=lambda spec: 4,  # like a windowed transformer: tiles at multiples of 4
)


@pytest.fixture(scope="module")
def stub() -> Architecture:
    return register(STUB)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ernet.training.synthetic import SyntheticConfig, generate

    folder = tmp_path_factory.mktemp("pairs")
    for i in range(3):
        frame = generate(i, SyntheticConfig(height=64, width=72))
        tifffile.imwrite(folder / f"p{i}_image.tif", frame.image)
        tifffile.imwrite(folder / f"p{i}_mask.tif", frame.mask)
    return folder


def test_stub_trains_exports_and_runs_through_ernet_infer(
    stub: Architecture, labelled: Path, tmp_path: Path
) -> None:
    from ernet.export.exporter import export_checkpoint
    from ernet.training.checkpoint import load_checkpoint
    from ernet.training.train import TrainConfig, train

    cfg = TrainConfig(
        data=labelled,
        out=tmp_path / "run",
        architecture=ArchitectureSpec(NAME, {"hidden": 6}),
        val_fraction=0.34,
        epochs=1,
        steps_per_epoch=1,
        batch_size=2,
        crop=32,
        device="cpu",
    )
    train(cfg, quiet=True)
    loaded = load_checkpoint(tmp_path / "run" / "best.pt")
    assert isinstance(loaded.model, TwoLayerConv)
    assert loaded.metadata.architecture == ArchitectureSpec(NAME, {"hidden": 6})
    assert loaded.metadata.contract.tiles == TileSpec(32, multiple_of=4)
    assert stub.flops_per_pixel(loaded.metadata.architecture, loaded.metadata.contract) == 2 * 6 * (9 + 2)

    model = tmp_path / "stub.onnx"
    results = export_checkpoint(tmp_path / "run" / "best.pt", model)
    assert all(r.within_tolerance for r in results)
    assert {r.shape for r in results} == {(1, 1, 96, 96), (2, 1, 76, 56)}  # rounded up to multiples of 4

    frames = np.random.default_rng(0).integers(0, 255, (3, 70, 90), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", frames, imagej=True, metadata={"axes": "TYX"})
    done = run_cli(
        "ernet-infer", tmp_path / "stack.tif", "--model", model, "--provider", "cpu", "--tile", "32"
    )
    assert done.returncode == 0, done.stderr
    assert "(tile 32, overlap 8, batch 4)" in done.stderr
    masks = tifffile.imread(tmp_path / "stack_mask.tif")
    with Segmenter(model, provider="cpu", tile=32) as seg:
        assert all(y % 4 == 0 for y in seg.grid(70, 90).ys)
        np.testing.assert_array_equal(masks, np.stack([seg.segment(f) for f in frames]))
    done = run_cli(
        "ernet-infer", tmp_path / "stack.tif", "--model", model, "--tile", "30", "--overwrite", "-q"
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["error: tile 30 is not a multiple of 4, as this model needs"]


def test_a_foreign_state_dict_is_recognised_by_its_architecture(stub: Architecture, tmp_path: Path) -> None:
    from ernet.training.checkpoint import load_checkpoint

    torch.manual_seed(0)
    net = TwoLayerConv(1, 3, 5)
    torch.save(net.state_dict(), tmp_path / "bare.pth")
    loaded = load_checkpoint(tmp_path / "bare.pth")
    assert loaded.metadata.architecture == ArchitectureSpec(NAME, {"hidden": 5})
    assert loaded.metadata.contract.class_names == ("background", "c1", "c2")
    x = torch.rand(1, 1, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net.eval()(x), rtol=0, atol=0)


def test_unknown_architectures_and_options_are_refused(
    stub: Architecture, labelled: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="unknown architecture 'Nope'; known: .*ERNet-RCAN, ERnetV2-Swin"):
        get_architecture("Nope")
    with pytest.raises(ValueError, match="has no option n_feats"):
        stub.complete(ArchitectureSpec(NAME, {"n_feats": 8}))
    done = run_cli("ernet-train", labelled, "-o", tmp_path / "x", "--architecture", "Nope")
    assert done.returncode == 1 and done.stderr.splitlines()[0].startswith(
        "error: unknown architecture 'Nope'"
    )
    done = run_cli(
        "ernet-train", labelled, "-o", tmp_path / "y", "--option", "reduction=two", "--epochs", "1",
        "--val-fraction", "0.5",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: model config reduction must be a positive integer, got 'two'"
    ]
