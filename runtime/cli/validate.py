"""``ernet-validate``: per-image IoU and Dice of a model on labelled frames, beside a
classical local-threshold baseline (by default on the project's real frames)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..contract import BINARY_CLASSES
from ..evaluation import REAL_DATA
from ..evaluation.validate import (
    AGREEMENT_LEGEND,
    mean_scores,
    model_predictions,
    saved_predictions,
    score_pair,
)
from ..io import atomic_output, labelled_pairs
from ..segmenter import Segmenter
from ..spec import Provider, RunSpec
from .policy import MODEL_HELP, OVERLAP_HELP, TILE_HELP, command, typer_app

app = typer_app()


def _line(row: dict[str, Any], classes: tuple[str, ...] = ()) -> str:
    text = f"{row['frame']:<16} {row['iou']:6.3f} {row['dice']:6.3f}"
    text += "".join(f" {row.get(f'iou_{c}', float('nan')):>{max(len(c), 5) + 4}.3f}" for c in classes)
    return text + (
        f" {row['baseline_iou']:13.3f} {row['baseline_dice']:6.3f}" if "baseline_iou" in row else ""
    )


@app.command()
@command
def validate(
    data: Annotated[
        Path,
        typer.Argument(
            help="Folder of NAME_image / NAME_mask pairs.",
            show_default="$ERNET_REAL_DATA, else the project's real frames",
        ),
    ] = REAL_DATA,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help=MODEL_HELP,
        ),
    ] = None,
    provider: Annotated[Provider, typer.Option(help="Execution provider, as for ernet-infer.")] = "auto",
    tile: Annotated[int | None, typer.Option(min=1, help=TILE_HELP)] = None,
    overlap: Annotated[int | None, typer.Option(min=0, help=OVERLAP_HELP)] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Score the masks ernet-infer wrote to this folder instead of running a model."),
    ] = None,
    baseline: Annotated[bool, typer.Option(help="Also score the local-threshold baseline.")] = True,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write validation.json here, and NAME_agreement.png: each image's first frame, "
            "tinted where model and label agree or not."
        ),
    ] = None,
) -> None:
    """Score a model (and the classical baseline) on labelled frames, frame by frame."""
    source: dict[str, Any] = {"predictions": str(predictions)}
    class_names: tuple[str, ...] = BINARY_CLASSES
    network: tuple[int, ...] | None = None
    if predictions is not None:
        predict = saved_predictions(predictions)
    else:
        seg = Segmenter(RunSpec(model, provider, tile=tile, overlap=overlap))
        source = {
            "model": str(seg.model_path),
            "metadata": seg.metadata.to_dict(),
            "provider": seg.backend.description,
            "tile": seg.tile,
            "overlap": seg.overlap,
        }
        predict = model_predictions(seg)
        class_names, network = seg.contract.class_names, seg.contract.network_classes
    pairs = labelled_pairs(data)
    rows = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    per_class: tuple[str, ...] = ()
    for name, image_path, truth_path in pairs:
        view = out / f"{name}_agreement.png" if out is not None else None
        rows.append(score_pair(name, image_path, truth_path, predict, baseline, view, class_names, network))
        if len(rows) == 1:  # the header, with a column per class where the labels have them
            per_class = tuple(c for c in class_names[1:] if f"iou_{c}" in rows[0])
            header = f"{'frame':<16} {'IoU':>6} {'Dice':>6}"
            header += "".join(f" {'IoU ' + c:>{max(len(c), 5) + 4}}" for c in per_class)
            print(header + (f" {'baseline IoU':>13} {'Dice':>6}" if baseline else ""))
        print(_line(rows[-1], per_class))
    mean = mean_scores(rows)
    print(_line({"frame": "mean", **mean}, per_class))
    if out is not None:
        with atomic_output(out / "validation.json") as tmp:
            tmp.write_text(json.dumps({**source, "frames": rows, "mean": mean}, indent=2))
        views = ", ".join(f"{row['frame']}_agreement.png" for row in rows)
        print(f"wrote {out / 'validation.json'}; in {out}: {views} ({AGREEMENT_LEGEND})", file=sys.stderr)


def main() -> None:
    """Entry point of ``ernet-validate``."""
    app()
