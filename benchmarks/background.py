"""How much ER a model finds where there is none, with and without a noise floor.

``python -m ernet.benchmarks.background [--model M] [--floors 0,10,20,30,50]`` runs the
model (default: the embedded one) on frames without ER — Poisson noise at low, medium
and high counts, Gaussian read noise, a gradient under noise, a constant frame, and a
strip of empty camera background cut from a real frame — and on the labelled real
frames, normalising each with the model's normalisation and each noise floor
(:attr:`~ernet.runtime.preprocess.Normalization.noise_floor`). It prints, per floor,
the share of foreground predicted on each empty frame and the IoU on the real frames (a
multi-class model's ER: its network classes).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.evaluation import REAL_DATA, labelled_er, labelled_frames
from ernet.runtime.evaluation.scores import foreground_scores
from ernet.runtime.io import open_image

#: The real frame whose last rows are camera background only (its label has no ER there).
EMPTY_STRIP = ("stack2_t126_image.tif", 140)


def empty_frames(side: int = 512, seed: int = 0) -> dict[str, np.ndarray]:
    """Frames without ER: noise of several kinds, a gradient under noise, a constant."""
    rng = np.random.default_rng(seed)
    gradient = 100 + 200 * np.mgrid[0:side, 0:side][1] / side
    return {
        "Poisson 5": rng.poisson(5, (side, side)).astype(np.uint16),
        "Poisson 100": rng.poisson(100, (side, side)).astype(np.uint16),
        "Poisson 5000": rng.poisson(5000, (side, side)).astype(np.uint16),
        "Gaussian read noise": (1000 + rng.normal(0, 20, (side, side))).astype(np.uint16),
        "gradient + noise": rng.poisson(gradient).astype(np.uint16),
        "constant": np.full((side, side), 700, np.uint16),
    }


def measure(model: Path | None, floors: list[float], real_data: Path) -> list[dict[str, float]]:
    """Per noise floor: the ER share on each empty frame and the real frames' mean IoU."""
    frames = empty_frames()
    strip_file = real_data / EMPTY_STRIP[0]
    if strip_file.is_file():
        frames["empty strip of a real frame"] = open_image(strip_file).frame(0)[-EMPTY_STRIP[1] :]
    real = labelled_frames(real_data, "real")
    rows = []
    with Segmenter(RunSpec(model, "cpu")) as seg:
        for floor in floors:
            norm = replace(seg.normalization, noise_floor=floor)
            row: dict[str, float] = {"noise floor": floor}
            for name, frame in frames.items():
                row[name] = float((seg.segment(frame, norm.value_range(frame)) != 0).mean())
            if real is not None:
                ious = [
                    foreground_scores(labelled_er(seg.segment(f, norm.value_range(f)), seg.contract), t)[
                        "iou"
                    ]
                    for f, t in zip(real.frames, real.labels, strict=True)
                ]
                row["real IoU"] = float(np.mean(ious))
            rows.append(row)
    return rows


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model or embedded model's name; default: default"
    )
    parser.add_argument("--floors", default="0,10,20,30,50", help="noise floors, in noise levels")
    parser.add_argument("--real-data", type=Path, default=REAL_DATA, help="labelled real frames")
    args = parser.parse_args()
    rows = measure(args.model, [float(f) for f in args.floors.split(",")], args.real_data)
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{row['noise floor']:g}"] + [
            f"{row[c]:.4f}" if c == "real IoU" else f"{100 * row[c]:.1f}% ER" for c in columns[1:]
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
