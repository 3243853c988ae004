"""Training data, the restricted unpickler, checkpoints, resume and determinism."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile

torch = pytest.importorskip("torch")

from ernet.runtime.errors import InputError  # noqa: E402
from ernet.runtime.io import labelled_pairs  # noqa: E402
from ernet.runtime.preprocess import Normalization  # noqa: E402
from ernet.training.checkpoint import load_checkpoint  # noqa: E402
from ernet.training.data import RandomCrops, load_legacy_pickle, load_samples  # noqa: E402
from ernet.training.models.ernet import ERNetConfig  # noqa: E402
from ernet.training.synthetic import SyntheticConfig, generate_stack  # noqa: E402
from ernet.training.train import TrainConfig, train  # noqa: E402

from conftest import TINY_OPTIONS, run_cli  # noqa: E402

TINY = ERNetConfig(**TINY_OPTIONS)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    for i in range(5):
        frame = generate_stack(1, seed=i, config=SyntheticConfig(height=72, width=90))[0]
        tifffile.imwrite(folder / f"f{i}_image.tif", frame.image)
        tifffile.imwrite(folder / f"f{i}_mask.tif", frame.mask)
    (folder / "README.txt").write_text("not data")
    return folder


def test_pairs_by_suffix_and_by_subfolder(dataset: Path, tmp_path: Path) -> None:
    pairs = labelled_pairs(dataset)
    assert [p.name for p in pairs] == [f"f{i}" for i in range(5)]
    assert [p.image.name for p in pairs] == [f"f{i}_image.tif" for i in range(5)]
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.ones((8, 8), np.uint8)).save(tmp_path / "masks" / "a.png")
    (sample,) = load_samples(tmp_path, Normalization())
    assert sample.image.shape == (1, 8, 8) and sample.mask.dtype == np.int64 and sample.mask.all()
    with pytest.raises(InputError, match="no image/mask pairs"):
        labelled_pairs(tmp_path / "images")


def test_crops_are_deterministic_and_augmented(dataset: Path) -> None:
    samples = load_samples(dataset, Normalization())
    crops = RandomCrops(samples, crop=48, length=6, seed=4)
    first = [crops[i] for i in range(6)]
    again = [crops[i] for i in range(6)]
    for (a, am), (b, bm) in zip(first, again, strict=True):
        assert torch.equal(a, b) and torch.equal(am, bm)
    assert first[0][0].shape == (1, 48, 48) and first[0][1].shape == (48, 48)
    crops.epoch = 1
    assert not torch.equal(crops[0][0], first[0][0])
    small = RandomCrops(samples, crop=128, length=1)  # frames smaller than the crop are padded
    assert small[0][0].shape == (1, 128, 128)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("as_pil", [False, True])
def test_legacy_pickle_admits_arrays_and_images(protocol: int, as_pil: bool, tmp_path: Path) -> None:
    from PIL import Image

    pairs = [(np.full((16, 16), 200, np.uint8), np.ones((16, 16), np.uint8)) for _ in range(3)]
    if as_pil:
        pairs = [(Image.fromarray(a), Image.fromarray(b)) for a, b in pairs]
    (tmp_path / "crops.pkl").write_bytes(pickle.dumps(pairs, protocol=protocol))
    samples = load_legacy_pickle(tmp_path / "crops.pkl", Normalization.original())
    assert len(samples) == 3 and samples[0].image.shape == (1, 16, 16)
    np.testing.assert_allclose(samples[0].image, 200 / 255)
    assert samples[0].mask.dtype == np.int64 and samples[0].mask.all()


def test_legacy_pickle_refuses_anything_else(tmp_path: Path) -> None:

    class Payload:
        def __reduce__(self):  # noqa: ANN204
            return (Path.touch, (tmp_path / "pwned",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps([(Payload(), np.zeros((2, 2)))]))
    with pytest.raises(InputError, match="refusing to load pathlib"):
        load_legacy_pickle(tmp_path / "evil.pkl", Normalization())
    assert not (tmp_path / "pwned").exists()


def _config(dataset: Path, out: Path, epochs: int, resume: Path | None = None) -> TrainConfig:
    return TrainConfig(
        data=dataset,
        out=out,
        architecture=TINY.architecture(),
        epochs=epochs,
        steps_per_epoch=2,
        batch_size=2,
        crop=48,
        lr=1e-3,
        lr_step=1,
        seed=11,
        device="cpu",
        resume=resume,
    )


def test_checkpoints_carry_everything_and_training_is_deterministic(dataset: Path, tmp_path: Path) -> None:
    summary = train(_config(dataset, tmp_path / "a", epochs=2), quiet=True)
    loaded = load_checkpoint(tmp_path / "a" / "last.pt")
    meta = loaded.metadata
    assert ERNetConfig.of(meta.architecture, meta.contract) == TINY and meta.contract.tiles.size == 48
    assert meta.contract.class_names == ("background", "ER")
    assert meta.contract.normalization == Normalization()
    training = meta.provenance["training"]
    assert training["seed"] == 11 and training["crop"] == 48 and training["lr"] == 1e-3
    data = meta.provenance["data"]
    assert len(data["files"]) == 10 and all(len(f["sha256"]) == 64 for f in data["files"])
    assert data["train_samples"] == ["f0", "f1", "f2", "f3"] and data["validation_samples"] == ["f4"]
    assert {"iou_ER", "dice_ER", "iou_background"} <= meta.provenance["validation"].keys()
    assert loaded.raw["epoch"] == 2 and (tmp_path / "a" / "best.pt").is_file()
    assert loaded.raw["scheduler"]["last_epoch"] == 2  # lr halved after each of the 2 epochs
    # same seed, same result
    again = train(_config(dataset, tmp_path / "b", epochs=2), quiet=True)
    assert [h["loss"] for h in again["history"]] == [h["loss"] for h in summary["history"]]


def test_resume_continues_where_it_stopped(dataset: Path, tmp_path: Path) -> None:
    full = train(_config(dataset, tmp_path / "full", epochs=3), quiet=True)
    train(_config(dataset, tmp_path / "part", epochs=2), quiet=True)
    resumed = train(
        _config(dataset, tmp_path / "part", epochs=3, resume=tmp_path / "part" / "last.pt"), quiet=True
    )
    assert len(resumed["history"]) == 3
    np.testing.assert_allclose(
        [h["loss"] for h in resumed["history"]], [h["loss"] for h in full["history"]], rtol=1e-5
    )


def test_resume_refuses_other_models_and_foreign_checkpoints(dataset: Path, tmp_path: Path) -> None:
    train(_config(dataset, tmp_path / "run", epochs=1), quiet=True)
    other = _config(dataset, tmp_path / "run", epochs=2, resume=tmp_path / "run" / "last.pt")
    other.architecture = ERNetConfig(n_feats=16, n_resgroups=1, n_resblocks=1, reduction=4).architecture()
    with pytest.raises(ValueError, match="differs from the requested"):
        train(other, quiet=True)
    from ernet.training.models.ernet import ERNet

    torch.save(
        {"epoch": 3, "state_dict": ERNet(TINY).state_dict(), "optimizer": {}}, tmp_path / "published.pth"
    )
    with pytest.raises(ValueError, match="not a checkpoint written by ernet-train"):
        train(_config(dataset, tmp_path / "run2", epochs=2, resume=tmp_path / "published.pth"), quiet=True)


def test_train_cli_reports_bad_data_in_one_line(tmp_path: Path) -> None:
    done = run_cli("ernet-train", tmp_path / "nowhere", "-o", tmp_path / "out")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: data folder not found"]


def test_the_shipped_preset_is_the_recipe_of_the_embedded_default_model() -> None:
    from ernet.runtime.backends import read_onnx_metadata
    from ernet.runtime.models import default_model_path
    from ernet.training.presets import PRESETS

    metadata = read_onnx_metadata(default_model_path())
    recorded = metadata.provenance["training"]
    shipped = PRESETS["shipped"]
    schedule = ("epochs", "steps_per_epoch", "batch_size", "crop", "lr", "lr_step", "lr_gamma")
    for name in (*schedule, "val_fraction"):
        assert getattr(shipped, name) == recorded[name], name
    assert shipped.architecture_config(metadata.architecture.name) == metadata.architecture.config


def test_train_options_override_the_preset(dataset: Path, tmp_path: Path) -> None:
    """``--preset published`` gives the published schedule; options given win over it
    (read back from the checkpoint written)."""
    done = run_cli(
        "ernet-train", dataset, "--out", tmp_path, "--preset", "published", "--epochs", "1",
        "--steps-per-epoch", "1", "--crop", "32", "--features", "8", "--groups", "1", "--blocks", "1",
        "--reduction", "2", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metadata = load_checkpoint(tmp_path / "last.pt").metadata
    training = metadata.provenance["training"]
    assert (training["lr"], training["lr_step"], training["batch_size"]) == (1e-4, 20, 2)  # published
    assert (training["epochs"], training["crop"]) == (1, 32)  # given
    assert metadata.architecture.config == {"n_feats": 8, "n_resgroups": 1, "n_resblocks": 1, "reduction": 2}


class _Threshold(torch.nn.Module):
    """A perfect 'model' for frames whose intensity is their label: ER where above 0.5."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x, x - 0.5], dim=1)


def test_validation_scores_whole_frames_through_the_tiler() -> None:
    """ER only in the middle of a frame: crops from its corners would see none (IoU NaN)."""
    from ernet.runtime.contract import ModelContract, TileSpec
    from ernet.training.data import Sample
    from ernet.training.train import evaluate

    mask = np.zeros((300, 260), np.int64)
    mask[120:180, 100:160] = 1
    image = mask[None].astype(np.float32)
    contract = ModelContract(tiles=TileSpec(64))
    perfect = evaluate(_Threshold(), [Sample("mid", image, mask)], contract, torch.device("cpu"))
    assert perfect["iou_ER"] == 1.0 and perfect["mean_iou_foreground"] == 1.0
    half = mask.copy()
    half[150:] = 0  # the model finds the top half of the ER
    scored = evaluate(
        _Threshold(), [Sample("mid", half[None].astype(np.float32), mask)], contract, torch.device("cpu")
    )
    assert scored["iou_ER"] == pytest.approx(0.5)
    # the mean over frames, not over pooled pixels: a small frame counts as much as a large one
    small = np.zeros((40, 40), np.int64)
    small[10:20, 10:20] = 1
    both = evaluate(
        _Threshold(),
        [
            Sample("mid", half[None].astype(np.float32), mask),
            Sample("small", np.zeros((1, 40, 40), np.float32), small),
        ],
        contract,
        torch.device("cpu"),
    )
    assert both["mean_iou_foreground"] == pytest.approx(0.25) and both["iou_ER"] > 0.25


def test_validation_without_labelled_foreground_is_an_error(tmp_path: Path) -> None:
    data, empty = tmp_path / "data", tmp_path / "empty"
    for folder, value in ((data, 1), (empty, 0)):
        folder.mkdir()
        tifffile.imwrite(folder / "a_image.tif", np.full((32, 32), 100, np.uint16))
        tifffile.imwrite(folder / "a_mask.tif", np.full((32, 32), value, np.uint8))
    with pytest.raises(InputError, match="validation samples hold no labelled foreground"):
        train(
            TrainConfig(data=data, out=tmp_path / "out", val_data=empty, epochs=1, steps_per_epoch=1, crop=32)
        )


def test_a_noise_floor_travels_with_the_model(dataset: Path, tmp_path: Path) -> None:
    """Trained with it, recorded in the checkpoint and the exported model, applied by the runtime."""
    done = run_cli(
        "ernet-train", dataset, "--out", tmp_path, "--epochs", "1", "--steps-per-epoch", "1", "--crop", "32",
        "--features", "8", "--groups", "1", "--blocks", "1", "--reduction", "2", "--noise-floor", "30",
        "--val-fraction", "0.2", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_checkpoint(tmp_path / "last.pt").metadata.contract.normalization.noise_floor == 30
    pytest.importorskip("onnx")
    from ernet.export.exporter import export_checkpoint
    from ernet.runtime import Segmenter

    export_checkpoint(tmp_path / "last.pt", tmp_path / "m.onnx")
    with Segmenter(tmp_path / "m.onnx", provider="cpu") as seg:
        noise = np.random.default_rng(0).poisson(100, (64, 64)).astype(np.uint16)
        assert seg.normalization.noise_floor == 30 and seg.prepare(noise).max() < 0.25


def test_balanced_class_weights_favour_rare_classes() -> None:
    from ernet.training.data import Sample, balanced_class_weights

    mask = np.zeros((10, 10), np.int64)
    mask[:1], mask[1:5] = 1, 2  # shares: 0.5 background, 0.1 class 1, 0.4 class 2, none of class 3
    weights = balanced_class_weights([Sample("a", np.zeros((1, 10, 10), np.float32), mask)], 4)
    assert weights[1] > weights[2] > weights[0] and weights[3] == weights[1]
    assert weights[1] / weights[2] == pytest.approx(2.0)  # share^-1/2: (0.1 / 0.4)^-1/2
    assert (np.bincount(mask.ravel(), minlength=4) / mask.size * weights).sum() == pytest.approx(1.0)
