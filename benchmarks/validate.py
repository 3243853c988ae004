"""``ernet-validate``: per-frame IoU and Dice of a model on labelled frames,
beside a classical local-threshold baseline.

Reads NAME_image / NAME_mask pairs (by default the real frames in
``../shared/data/er-real``), segments each image whole-frame-normalised through
the runtime exactly as ``ernet-infer`` does, and scores the ER class.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ernet.runtime import Segmenter
from ernet.runtime.errors import ErnetError, InputError
from ernet.runtime.evaluation import confusion_matrix, scores
from ernet.runtime.io import atomic_output, labelled_pairs, mask_path, open_image

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
DEFAULT_DATA = Path("../shared/data/er-real")


def local_threshold(frame: np.ndarray, block: int = 31, offset: float = 0.0) -> np.ndarray:
    """Classical baseline: a pixel is ER where its smoothed value exceeds the mean of
    its ``block`` x ``block`` neighbourhood (plus ``offset`` x the frame's std)."""
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(frame.astype(np.float32), 1.0)
    local = ndimage.uniform_filter(smooth, block)
    return (smooth > local + offset * smooth.std()).astype(np.uint8)


def frame_scores(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """IoU and Dice of the ER class (id 1) over all pixels of a frame or stack."""
    s = scores(confusion_matrix(prediction, truth, 2), ("background", "ER"))
    return {"iou": s["iou_ER"], "dice": s["dice_ER"]}


Predict = Callable[[Path, list[np.ndarray]], np.ndarray]


def score_pair(
    name: str, image_path: Path, truth_path: Path, predict: Predict, baseline: bool
) -> dict[str, Any]:
    """Scores of one labelled image or stack (all its frames together)."""
    image, truth = open_image(image_path), open_image(truth_path).data
    if truth.shape != image.shape:
        raise InputError(f"{truth_path}: shape {truth.shape} differs from {image_path}'s {image.shape}")
    frames = list(image.frames())
    truth = truth.reshape(len(frames), *image.frame_shape)
    row: dict[str, Any] = {"frame": name, **frame_scores(predict(image_path, frames), truth)}
    if baseline:
        base = frame_scores(np.stack([local_threshold(f) for f in frames]), truth)
        row.update(baseline_iou=base["iou"], baseline_dice=base["dice"])
    return row


def _line(row: dict[str, Any]) -> str:
    text = f"{row['frame']:<16} {row['iou']:6.3f} {row['dice']:6.3f}"
    return text + (
        f" {row['baseline_iou']:13.3f} {row['baseline_dice']:6.3f}" if "baseline_iou" in row else ""
    )


@app.command()
def validate(
    data: Annotated[Path, typer.Argument(help="Folder of NAME_image / NAME_mask pairs.")] = DEFAULT_DATA,
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="ERNet ONNX; default: the embedded one.")
    ] = None,
    provider: str = "auto",
    tile: int | None = None,
    overlap: int | None = None,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Score the masks ernet-infer wrote to this folder instead of running a model."),
    ] = None,
    baseline: Annotated[bool, typer.Option(help="Also score the local-threshold baseline.")] = True,
    out: Annotated[Path | None, typer.Option(help="Write validation.json here.")] = None,
) -> None:
    """Score a model (and the classical baseline) on labelled frames, frame by frame."""
    source: dict[str, Any] = {"predictions": str(predictions)}
    try:
        pairs = labelled_pairs(data)
        if predictions is not None:

            def predict(image_path: Path, frames: list[np.ndarray]) -> np.ndarray:
                mask = open_image(mask_path(image_path, predictions)).data
                return mask.reshape(len(frames), *frames[0].shape)
        else:
            seg = Segmenter(model, provider=provider, tile=tile, overlap=overlap)
            source = {
                "model": str(seg.model_path),
                "metadata": seg.metadata.to_dict(),
                "provider": seg.backend.description,
                "tile": seg.tile,
                "overlap": seg.overlap,
            }

            def predict(image_path: Path, frames: list[np.ndarray]) -> np.ndarray:
                return np.stack([seg.segment(f) for f in frames])

        print(
            f"{'frame':<16} {'IoU':>6} {'Dice':>6}"
            + (f" {'baseline IoU':>13} {'Dice':>6}" if baseline else "")
        )
        rows = []
        for name, image_path, truth_path in pairs:
            rows.append(score_pair(name, image_path, truth_path, predict, baseline))
            print(_line(rows[-1]))
    except (ErnetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    mean = {k: statistics.fmean(r[k] for r in rows) for k in rows[0] if k != "frame"}
    print(_line({"frame": "mean", **mean}))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_output(out / "validation.json") as tmp:
            tmp.write_text(json.dumps({**source, "frames": rows, "mean": mean}, indent=2))


def main() -> None:
    """Entry point of ``ernet-validate``."""
    app()
