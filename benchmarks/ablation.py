"""Which generator feature matters: train on generated data with and without each one,
score each model on the labelled real frames.

``python -m ernet.benchmarks.ablation --out build/ablation [--rows 2,3]`` runs, for
every row of :data:`ROWS` (or those named), what ``make train-default`` runs, with the
row's ``ernet-simulate --set`` changes: ``ernet-simulate`` (the embedded default's data),
``ernet-train`` (its recipe: the ``shipped`` preset, seed 0, noise floor 30),
``ernet-export`` (fp32, its minimum object size), then ``ernet-validate`` on
``../shared/data/er-real``, and prints a Markdown table of the real frames' IoU and the
share of predicted ER far from any labelled ER (:mod:`.speckle`) per row.
The first row is the binary default itself. About 45 minutes of training per row on
2 CPU cores; every step's files stay under ``--out/rowN``, and a row whose validation
exists is not run again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from ernet.runtime import RunSpec, Segmenter
from ernet.runtime.evaluation import REAL_DATA, labelled_er, labelled_frames

from .speckle import speckle

#: Generator changes of each row (``ernet-simulate --set``), against the full generator.
ROWS: dict[str, list[str]] = {
    "full generator": [],
    "without sheets (a saturated disc) and SBT": ["sheet_extent=[0,0]"],
    "without SBT": ["sbt_band=[0,0]"],
    "without tubule variety (width, brightness along)": ["width_spread=[0,0]", "along_variation=[0,0]"],
    "the generator before (none of the four)": [
        "sheet_extent=[0,0]",
        "sbt_band=[0,0]",
        "width_spread=[0,0]",
        "along_variation=[0,0]",
    ],
}
#: The embedded default's data, training and export arguments (the Makefile's).
DATA = ["--count", "200", "--size", "512x512", "--seed", "1", "--empty-fraction", "0.1"]
RECIPE = ["--preset", "shipped", "--seed", "0", "--noise-floor", "30"]
EXPORT = ["--variants", "", "--no-engine", "--min-object-size", "64", "--overwrite"]


def _run(args: list[str], log: Path) -> None:
    with log.open("a") as out:
        print("$ " + " ".join(args), file=out, flush=True)
        subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, check=True)


def run_row(changes: list[str], folder: Path, bin_dir: Path) -> dict:
    """Simulate, train, export and validate one row; its validation.json as a dict."""
    result = folder / "validate" / "validation.json"
    if not result.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "log.txt"
        sets = [a for c in changes for a in ("--set", c)]
        _run([str(bin_dir / "ernet-simulate"), str(folder / "data"), *DATA, *sets], log)
        _run(
            [str(bin_dir / "ernet-train"), str(folder / "data"), "--out", str(folder), *RECIPE, "--quiet"],
            log,
        )
        _run(
            [
                str(bin_dir / "ernet-export"),
                str(folder / "best.pt"),
                "-o",
                str(folder / "model.onnx"),
                *EXPORT,
            ],
            log,
        )
        model, report = str(folder / "model.onnx"), str(folder / "validate")
        _run([str(bin_dir / "ernet-validate"), "--model", model, "--out", report], log)
    return json.loads(result.read_text())


def far_shares(model: Path, real_data: Path) -> list[float]:
    """Per real frame, the share of the model's ER (its masks as ernet-infer writes them)
    in pieces more than 20 px from every labelled ER pixel (:mod:`.speckle`)."""
    real = labelled_frames(real_data, "real")
    if real is None:
        return []
    with Segmenter(RunSpec(model, "cpu")) as seg:
        return [
            speckle(labelled_er(seg.segment(frame), seg.contract), truth != 0, 20.0)[1]
            for frame, truth in zip(real.frames, real.labels, strict=True)
        ]


def main() -> None:
    """Run every row (or those named) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/ablation"))
    parser.add_argument("--rows", default="", help="comma-separated row numbers (1-based); default: all")
    parser.add_argument("--real-data", type=Path, default=REAL_DATA, help="labelled real frames")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    names = list(ROWS)
    chosen = [names[int(i) - 1] for i in args.rows.split(",")] if args.rows else names
    print("| generator | real IoU per frame | mean IoU | mean Dice | ER far from labelled ER, per frame |")
    print("|---|---|---|---|---|")
    for name in chosen:
        folder = args.out / f"row{names.index(name) + 1}"
        result = run_row(ROWS[name], folder, bin_dir)
        per_frame = " / ".join(f"{r['iou']:.3f}" for r in result["frames"])
        far = " / ".join(
            f"{100 * share:.1f} %" for share in far_shares(folder / "model.onnx", args.real_data)
        )
        mean = result["mean"]
        print(f"| {name} | {per_frame} | {mean['iou']:.3f} | {mean['dice']:.3f} | {far} |", flush=True)


if __name__ == "__main__":
    main()
