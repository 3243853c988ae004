"""Speckle: predicted ER far from any labelled ER, and what a minimum object size does.

``python -m ernet.benchmarks.speckle [--model M] [--sizes 0,16,32,64,128]`` segments the
labelled real frames as ``ernet-infer`` does by default and, for each minimum object
size (predicted pieces, 8-connected, smaller than it dropped), reports per frame: the
pieces lying more than ``--distance`` px (default 20) from every labelled ER pixel, the
share of predicted ER they hold, and the IoU against the labels (a multi-class model's
ER: its network classes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.evaluation import REAL_DATA, labelled_er, labelled_frames
from ernet.runtime.evaluation.scores import foreground_scores
from ernet.runtime.postprocess import EIGHT_CONNECTED, without_small_pieces


def speckle(prediction: np.ndarray, truth: np.ndarray, distance: float) -> tuple[int, float]:
    """The predicted pieces lying more than ``distance`` px from every labelled pixel, and
    the share of predicted pixels they hold."""
    far = ndimage.distance_transform_edt(~truth) > distance
    pieces, n = ndimage.label(prediction, structure=EIGHT_CONNECTED)
    if n == 0:
        return 0, 0.0
    # a piece is speckle if no pixel of it is within reach of the labels
    reaches = ndimage.maximum(~far, labels=pieces, index=np.arange(1, n + 1))
    lonely = np.flatnonzero(~np.asarray(reaches, bool)) + 1
    share = float(np.isin(pieces, lonely).sum() / max(prediction.sum(), 1))
    return len(lonely), share


def main() -> None:
    """Print one row per frame and minimum size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model or embedded model's name; default: default"
    )
    parser.add_argument("--sizes", default="0,16,32,64,128", help="minimum object sizes in pixels")
    parser.add_argument("--distance", type=float, default=20.0, help="px from labelled ER that count as far")
    parser.add_argument("--real-data", type=Path, default=REAL_DATA, help="labelled real frames")
    args = parser.parse_args()
    real = labelled_frames(args.real_data, "real")
    if real is None:
        raise SystemExit(f"error: {args.real_data}: no labelled frames")
    with Segmenter(RunSpec(args.model, "cpu", min_object_size=0)) as seg:
        predictions = [labelled_er(seg.segment(f), seg.contract) for f in real.frames]
    truths = [t != 0 for t in real.labels]
    far = f"far pieces (> {args.distance:g} px) per frame"
    print(f"| min size | {far} | their share of predicted ER | IoU per frame | mean IoU |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        rows = []
        for prediction, truth in zip(predictions, truths, strict=True):
            kept = without_small_pieces(prediction, size)
            rows.append((*speckle(kept, truth, args.distance), foreground_scores(kept, truth)["iou"]))
        pieces = " / ".join(str(r[0]) for r in rows)
        shares = " / ".join(f"{100 * r[1]:.1f} %" for r in rows)
        ious = " / ".join(f"{r[2]:.3f}" for r in rows)
        print(f"| {size} | {pieces} | {shares} | {ious} | {np.mean([r[2] for r in rows]):.4f} |")


if __name__ == "__main__":
    main()
