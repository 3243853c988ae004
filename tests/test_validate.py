"""ernet-validate: per-frame scores of a model and of the classical baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ernet.runtime.errors import InputError  # noqa: E402
from ernet.runtime.evaluation import foreground_scores  # noqa: E402
from ernet.runtime.evaluation.validate import local_threshold  # noqa: E402
from ernet.runtime.io import labelled_pairs  # noqa: E402
from ernet.training.synthetic import SyntheticConfig, generate  # noqa: E402

from conftest import run_cli  # noqa: E402


def test_local_threshold_finds_bright_lines() -> None:
    frame = np.full((64, 64), 20.0)
    frame[30:33, :] = 200.0
    mask = local_threshold(frame)
    assert mask[31].all() and mask[:20].sum() == 0


def test_frame_scores() -> None:
    truth = np.array([[0, 1], [1, 1]])
    assert foreground_scores(truth, truth) == {"iou": 1.0, "dice": 1.0}
    assert foreground_scores(np.array([[0, 1], [0, 0]]), truth) == pytest.approx({"iou": 1 / 3, "dice": 0.5})


def test_binary_labels_score_a_four_class_model_by_its_network(tmp_path: Path) -> None:
    from ernet.runtime.contract import FOUR_CLASSES
    from ernet.runtime.evaluation.validate import score_pair

    truth = np.zeros((8, 8), np.uint8)
    truth[:, :4] = 1  # ERNet's labels: the tubular network is ER
    classes = np.zeros((1, 8, 8), np.uint8)
    classes[0, :, :2], classes[0, :, 2:4], classes[0, :, 4:6] = 1, 3, 2  # tubule, SBT, sheet
    tifffile.imwrite(tmp_path / "f_image.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(tmp_path / "f_mask.tif", truth)

    def score(network: tuple[int, ...] | None) -> float:
        predict = lambda path, frames: classes  # noqa: E731
        args = (
            tmp_path / "f_image.tif",
            tmp_path / "f_mask.tif",
            predict,
            False,
            None,
            FOUR_CLASSES,
            network,
        )
        return score_pair("f", *args)["iou"]

    assert score((1, 3)) == 1.0  # tubules and SBT are the labels' ER; sheets are not
    assert score(None) == pytest.approx(4 / 6)  # a model without network classes: its foreground


def test_validate_cli(tiny_onnx: Path, tmp_path: Path) -> None:
    for i in range(2):
        frame = generate(i, SyntheticConfig(height=96, width=120))
        tifffile.imwrite(tmp_path / f"s{i}_image.tif", frame.image)
        tifffile.imwrite(tmp_path / f"s{i}_mask.tif", frame.mask)
    assert [p[0] for p in labelled_pairs(tmp_path)] == ["s0", "s1"]
    done = run_cli(
        "ernet-validate", tmp_path, "--model", tiny_onnx, "--provider", "cpu", "--out", tmp_path / "r"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "r" / "validation.json").read_text())
    assert [r["frame"] for r in result["frames"]] == ["s0", "s1"]
    assert 0 <= result["mean"]["iou"] <= 1 and 0 <= result["mean"]["baseline_iou"] <= 1
    assert "mean" in done.stdout.splitlines()[-1]
    # scoring the masks ernet-infer wrote gives the same numbers as running the model
    done = run_cli(
        "ernet-infer",
        *sorted(tmp_path.glob("*_image.tif")),
        "--model",
        tiny_onnx,
        "--provider",
        "cpu",
        "-q",
        "--out",
        tmp_path / "masks",
    )
    assert done.returncode == 0, done.stderr
    done = run_cli("ernet-validate", tmp_path, "--predictions", tmp_path / "masks", "--out", tmp_path / "p")
    assert done.returncode == 0, done.stderr
    scored = json.loads((tmp_path / "p" / "validation.json").read_text())
    assert scored["frames"] == result["frames"]
    with pytest.raises(InputError, match="no image/mask pairs"):
        labelled_pairs(tmp_path / "r")


def test_validate_out_draws_where_model_and_label_disagree(tmp_path: Path) -> None:
    """--out writes NAME_agreement.png: magenta false ER, green ER found, orange ER missed."""
    from PIL import Image

    from ernet.runtime.postprocess import CLASS_COLOURS

    data, predictions = tmp_path / "data", tmp_path / "predictions"
    data.mkdir(), predictions.mkdir()
    image = np.full((40, 40), 100, np.uint16)
    truth = np.zeros((40, 40), np.uint8)
    truth[:, 20:] = 1  # labelled ER: the right half
    predicted = np.zeros((40, 40), np.uint8)
    predicted[20:, :] = 1  # predicted ER: the bottom half
    tifffile.imwrite(data / "cell_image.tif", image)
    tifffile.imwrite(data / "cell_mask.tif", truth)
    tifffile.imwrite(predictions / "cell_image_mask.tif", predicted)
    done = run_cli(
        "ernet-validate", data, "--predictions", predictions, "--no-baseline", "--out", tmp_path / "v"
    )
    assert done.returncode == 0, done.stderr
    view = np.asarray(Image.open(tmp_path / "v" / "cell_agreement.png"))
    assert view.shape == (40, 40, 3)
    grey = view[0, 0]
    assert (grey == grey[0]).all()  # top left: background in both, untinted
    for (y, x), colour in [((30, 5), 0), ((30, 30), 1), ((5, 30), 2)]:  # false ER, found, missed
        tint = view[y, x].astype(int) - grey.astype(int)
        assert np.sign(tint).tolist() == np.sign(CLASS_COLOURS[colour] - grey).astype(int).tolist()


def test_labelled_er_is_the_network_classes() -> None:
    from ernet.runtime.contract import FOUR_CLASSES, ModelContract
    from ernet.runtime.evaluation import labelled_er

    ids = np.array([[0, 1, 2, 3]])
    four = ModelContract(class_names=FOUR_CLASSES, network_classes=(1, 3))
    assert labelled_er(ids, four).tolist() == [[False, True, False, True]]
    assert labelled_er(ids, ModelContract(class_names=FOUR_CLASSES)).tolist() == [[False, True, True, True]]
    assert labelled_er(np.array([[0, 1]]), ModelContract()).tolist() == [[False, True]]
